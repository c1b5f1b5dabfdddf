package mgmt

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicelb/sluice/l7"
	"github.com/sluicelb/sluice/mgmt/ui"
)

// Route is one API route; the router and the OpenAPI test both read Routes.
type Route struct {
	Method, Path string
	handler      func(*Server) http.HandlerFunc
}

// Routes is the API: every route the daemon serves.
var Routes = []Route{
	{"GET", "/v1/status", (*Server).getStatus},
	{"GET", "/v1/stats", (*Server).getStats},
	{"GET", "/v1/acl", (*Server).getACL},
	{"PUT", "/v1/acl/policy", (*Server).putPolicy},
	{"PUT", "/v1/acl/protect", (*Server).putProtect},
	{"GET", "/v1/acl/check", (*Server).getCheck},
	{"GET", "/v1/acl/lists/{name}", (*Server).getList},
	{"PUT", "/v1/acl/lists/{name}", (*Server).putList},
	{"PATCH", "/v1/acl/lists/{name}", (*Server).patchList},
	{"DELETE", "/v1/acl/lists/{name}", (*Server).deleteList},
	{"GET", "/v1/services", (*Server).getServices},
	{"GET", "/v1/services/{name}", (*Server).getService},
	{"PUT", "/v1/services/{name}", (*Server).putService},
	{"DELETE", "/v1/services/{name}", (*Server).deleteService},
	{"PATCH", "/v1/services/{name}/backends/{addr}", (*Server).patchBackend},
	{"GET", "/v1/vservers", (*Server).getVServers},
	{"GET", "/v1/vservers/{name}", (*Server).getVServer},
	{"PUT", "/v1/vservers/{name}", (*Server).putVServer},
	{"DELETE", "/v1/vservers/{name}", (*Server).deleteVServer},
	{"PUT", "/v1/vservers/{name}/locations/{loc}", (*Server).putLocation},
	{"DELETE", "/v1/vservers/{name}/locations/{loc}", (*Server).deleteLocation},
	{"GET", "/v1/upstreams", (*Server).getUpstreams},
	{"GET", "/v1/upstreams/{name}", (*Server).getUpstream},
	{"PUT", "/v1/upstreams/{name}", (*Server).putUpstream},
	{"DELETE", "/v1/upstreams/{name}", (*Server).deleteUpstream},
	{"DELETE", "/v1/upstreams/{name}/stats", (*Server).deleteUpstreamStats},
	{"GET", "/v1/upstreams/{name}/servers", (*Server).getServers},
	{"POST", "/v1/upstreams/{name}/servers", (*Server).postServer},
	{"GET", "/v1/upstreams/{name}/servers/{id}", (*Server).getServer},
	{"PATCH", "/v1/upstreams/{name}/servers/{id}", (*Server).patchServer},
	{"DELETE", "/v1/upstreams/{name}/servers/{id}", (*Server).deleteServer},
	{"GET", "/v1/certs", (*Server).getCerts},
	{"GET", "/v1/certs/{name}", (*Server).getCert},
	{"PUT", "/v1/certs/{name}", (*Server).putCert},
	{"DELETE", "/v1/certs/{name}", (*Server).deleteCert},
	{"GET", "/v1/accesslog", (*Server).getAccessLog},
	{"PUT", "/v1/accesslog", (*Server).putAccessLog},
	{"GET", "/v1/stats/l7", (*Server).getL7Stats},
	{"GET", "/ui", (*Server).getUI},
	{"GET", "/ui/", (*Server).getUI},
	{"GET", "/metrics", (*Server).getMetrics},
}

// Server serves the management API over the desired state.
type Server struct {
	acl      *aclState
	svc      *svcState
	status   func() Status
	stats    func() (Stats, error)
	registry *prometheus.Registry
	maxBody  int64
	l7       *l7State  // nil when the proxy is not running
	proxy    *l7.Proxy // nil in tests without one
}

// SetL7 adds the proxy's routes' state and its counters to the API.
func (s *Server) SetL7(st *l7State, p *l7.Proxy) {
	s.l7, s.proxy = st, p
	if p != nil {
		s.registry.MustRegister(p.Stats().Collector())
	}
}

func (s *Server) getUI() http.HandlerFunc {
	h := http.StripPrefix("/ui", ui.Handler())
	return h.ServeHTTP
}

// Handler returns the API for the unix socket: no token is needed there,
// because the socket's file mode is the access control.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range Routes {
		mux.Handle(r.Method+" "+r.Path, r.handler(s))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errNotFound("no route for %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// TokenHandler wraps h so that every request but the dashboard page needs
// `Authorization: Bearer token`.
func TokenHandler(h http.Handler, token string) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The dashboard page itself holds no data; it asks for the token and
		// sends it with every API call it makes.
		if r.Method == http.MethodGet && (r.URL.Path == "/ui" || r.URL.Path == "/ui/") {
			h.ServeHTTP(w, r)
			return
		}
		got := []byte(r.Header.Get("Authorization"))
		if token == "" || subtle.ConstantTimeCompare(got, want) != 1 {
			writeError(w, &apiError{status: http.StatusUnauthorized, Code: "unauthorized",
				Message: "a valid bearer token is required"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) body(w http.ResponseWriter, r *http.Request) io.Reader {
	return http.MaxBytesReader(w, r.Body, s.maxBody)
}

// decodeJSON reads a small JSON body strictly.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(s.body(w, r))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge(mbe.Limit)
		}
		return errBadRequest("invalid JSON body: %v", err)
	}
	return nil
}

func (s *Server) getMetrics() http.HandlerFunc {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}).ServeHTTP
}

// handler adapts a function returning (value, error) to an http.HandlerFunc.
func handler(fn func(w http.ResponseWriter, r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(w, r)
		if err != nil {
			writeError(w, err)
			return
		}
		if v != nil {
			writeJSON(w, http.StatusOK, v)
		}
	}
}
