package mgmt

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicelb/sluice/l7/accesslog"
)

// fuzzWrites are the API's writes the fuzzer drives: every route that
// changes state.
func fuzzWrites() []Route {
	var rs []Route
	for _, r := range Routes {
		if r.Method != "GET" {
			rs = append(rs, r)
		}
	}
	return rs
}

// outsideDir reports whether an access-log body the API would read names
// a file outside dir or a syslog server: the fuzzer must not create files
// elsewhere or dial hosts. (The API decodes one JSON value as this does,
// but refuses unknown fields: what it takes, this reads the same.)
func outsideDir(body []byte, dir string) bool {
	var c accesslog.Config
	if json.NewDecoder(bytes.NewReader(body)).Decode(&c) != nil {
		return false // refused by the API too
	}
	return c.Syslog != "" || c.Path != "" && !strings.HasPrefix(filepath.Clean(c.Path), dir+string(filepath.Separator))
}

// fuzzState is what a client can read of the whole state.
var fuzzState = []string{"/v1/acl", "/v1/services", "/v1/vservers", "/v1/upstreams", "/v1/certs", "/v1/accesslog"}

// FuzzAPIWrites sends arbitrary bodies and path parameters to every write
// of the API (an access log only into a temporary folder), over a state
// that holds a list, L4 and L7 services, an upstream and a virtual server,
// and checks what must hold for any request: no handler panics; nothing a client sends is a 500 (a bad
// request is the client's error, with its 4xx); and a request refused
// leaves the state, as every GET shows it, as it was.
func FuzzAPIWrites(f *testing.F) {
	e := newEnv(f)
	for _, w := range []struct{ method, path, ctype, body string }{
		{"PUT", "/v1/acl/lists/l?kind=deny", "text/plain", "10.0.0.0/8\n2001:db8::/32\n"},
		{"PUT", "/v1/services/web", "application/json", webJSON},
		{"PUT", "/v1/services/site", "application/json", l7SvcJSON},
		{"PUT", "/v1/upstreams/app", "application/json", appUpstream},
		{"PUT", "/v1/vservers/site", "application/json", strings.Replace(siteVServer, `"web"`, `"site"`, 1)},
	} {
		if rec := fuzzDo(e, w.method, w.path, w.ctype, []byte(w.body)); rec.Code != http.StatusOK {
			f.Fatalf("%s %s: %d %s", w.method, w.path, rec.Code, rec.Body)
		}
	}
	logDir := f.TempDir()
	writes := fuzzWrites()
	index := func(method, path string) uint8 {
		for i, r := range writes {
			if r.Method == method && r.Path == path {
				return uint8(i)
			}
		}
		f.Fatalf("no route %s %s", method, path)
		return 0
	}
	for _, s := range []struct {
		method, path, name, sub string
		json                    bool
		body                    string
	}{
		{"PUT", "/v1/acl/lists/{name}", "l", "", false, "10.0.0.1\n10.0.0.0/33\n"},
		{"PUT", "/v1/acl/lists/{name}", "j", "", true, `{"kind":"deny","entries":["10.0.0.2","2001:db8::/32"]}`},
		{"PATCH", "/v1/acl/lists/{name}", "l", "", true, `{"add":["10.0.0.9"],"remove":["10.0.0.0/8"]}`},
		{"PUT", "/v1/acl/policy", "", "", true, `{"mode":"allow"}`},
		{"PUT", "/v1/acl/protect", "", "", true, `{"prefixes":["192.0.2.0/24"]}`},
		{"PUT", "/v1/services/{name}", "web", "", true, webJSON},
		{"PATCH", "/v1/services/{name}/backends/{addr}", "web", "10.1.0.11", true, `{"state":"drain","weight":5}`},
		{"PUT", "/v1/upstreams/{name}", "app", "", true, appUpstream},
		{"POST", "/v1/upstreams/{name}/servers", "app", "", true, `{"addr":"10.2.0.3:8080","backup":true}`},
		{"PATCH", "/v1/upstreams/{name}/servers/{id}", "app", "1", true, `{"down":true,"weight":7}`},
		{"PUT", "/v1/vservers/{name}", "site", "", true, `{"service":"site","hosts":["*.example.com"],"locations":[{"name":"r","path":"~ ^/a","upstream":"app"}]}`},
		{"PUT", "/v1/vservers/{name}/locations/{loc}", "site", "api", true, apiLocationJSO},
		{"PUT", "/v1/certs/{name}", "c", "", true, `{"cert_pem":"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n","key_pem":""}`},
		{"DELETE", "/v1/upstreams/{name}", "app", "", false, ""},
		{"PUT", "/v1/accesslog", "", "", true, `{"enabled":true,"format":"template","template":"$remote_addr $status","path":"` +
			filepath.Join(logDir, "access.log") + `"}`},
		{"PUT", "/v1/accesslog", "", "", true, `{"enabled":false,"format":"json","buffer":100}`},
	} {
		f.Add(index(s.method, s.path), s.name, s.sub, s.json, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, route uint8, name, sub string, isJSON bool, body []byte) {
		r := writes[int(route)%len(writes)]
		if r.Path == "/v1/accesslog" && outsideDir(body, logDir) {
			return
		}
		path := strings.NewReplacer("{name}", url.PathEscape(name), "{addr}", url.PathEscape(sub),
			"{loc}", url.PathEscape(sub), "{id}", url.PathEscape(sub)).Replace(r.Path)
		ctype := "text/plain"
		if isJSON {
			ctype = "application/json"
		}
		before := readState(e)
		rec := fuzzDo(e, r.Method, path, ctype, body)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", r.Method, path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 300 {
			if after := readState(e); !bytes.Equal(after, before) {
				t.Fatalf("%s %s %q was refused (%d %s) and changed the state\nbefore: %s\nafter:  %s",
					r.Method, path, body, rec.Code, rec.Body, before, after)
			}
		}
	})
}

func fuzzDo(e *testEnv, method, path, ctype string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/", bytes.NewReader(body))
	r.URL.RawPath, r.URL.Path = path, path
	if u, err := url.ParseRequestURI(path); err == nil {
		r.URL = u
	}
	r.Header.Set("Content-Type", ctype)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func readState(e *testEnv) []byte {
	var b bytes.Buffer
	for _, p := range fuzzState {
		w := fuzzDo(e, "GET", p, "", nil)
		b.WriteString(p + " " + w.Body.String() + "\n")
	}
	return b.Bytes()
}
