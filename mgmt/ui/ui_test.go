package ui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandlerServesTheDashboard(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/ui/", http.StripPrefix("/ui", Handler()))
	mux.Handle("/ui", http.StripPrefix("/ui", Handler()))
	for _, path := range []string{"/ui", "/ui/", "/ui/index.html"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: status %d, want 200", path, rec.Code)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		body := rec.Body.String()
		for _, want := range []string{"<!doctype html>", `"` + PollURL + `"`, `"/v1/stats"`, "No L7 traffic yet"} {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s: body lacks %q", path, want)
			}
		}
	}
}

func TestHandlerHeadAndOtherMethods(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("HEAD", "/", nil))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD: %d, %d body bytes, Content-Length %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
	rec = httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", rec.Code)
	}
}

func TestPageIsSelfContainedAndSmall(t *testing.T) {
	if len(index) > 30<<10 {
		t.Errorf("index.html is %d bytes, want under 30 KiB", len(index))
	}
	for _, ref := range []string{"<script src", "<link ", "http://", "https://", "@import"} {
		if strings.Contains(string(index), ref) {
			t.Errorf("index.html refers to an outside resource (%q)", ref)
		}
	}
}
