// Package ui is the daemon's web dashboard: one self-contained page (inline
// CSS and JavaScript, no dependencies) that polls /v1/stats/l7 and /v1/stats
// every second and shows the traffic per virtual server, location, upstream
// server and L4 service. The daemon serves it at /ui.
package ui

import (
	_ "embed"
	"net/http"
	"strconv"
)

// PollURL is the API path the page reads its L7 numbers from.
const PollURL = "/v1/stats/l7"

//go:embed index.html
var index []byte

// Handler serves the dashboard at every path below where it is mounted.
// Only GET and HEAD are answered; other methods get 405.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(index)))
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'")
		if r.Method == http.MethodGet {
			w.Write(index)
		}
	})
}
