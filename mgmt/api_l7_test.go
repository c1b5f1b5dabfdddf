package mgmt

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/sluicelb/sluice/l7/stats"
)

const (
	l7SvcJSON      = `{"vip":"203.0.113.80","port":80,"proto":"tcp","mode":"l7"}`
	appUpstream    = `{"balancer":"least_conn","servers":[{"addr":"10.2.0.1:8080"},{"addr":"10.2.0.2:8080","weight":3}]}`
	siteVServer    = `{"service":"web","hosts":["example.com"],"locations":[{"name":"root","path":"/","upstream":"app"}]}`
	apiLocationJSO = `{"path":"/api/","upstream":"app","tries":2}`
)

func TestL7ObjectsLifecycleThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	vip := netip.MustParseAddrPort("203.0.113.80:80")
	// A virtual server needs its service and its upstreams to exist.
	if w := e.do(t, "PUT", "/v1/vservers/site", "application/json", siteVServer); w.Code != http.StatusBadRequest {
		t.Fatalf("vserver before its service: %d %s", w.Code, w.Body)
	}
	if w := e.do(t, "PUT", "/v1/services/web", "application/json", l7SvcJSON); w.Code != http.StatusOK {
		t.Fatalf("l7 service: %d %s", w.Code, w.Body)
	}
	if !e.steer.on[vip] {
		t.Fatalf("the l7 service's endpoint is not steered to the proxy: %v", e.steer.on)
	}
	if len(e.lb.ServicesMap) != 0 {
		t.Fatalf("an l7 service reached the L4 datapath: %v", e.lb.ServicesMap)
	}
	if w := e.do(t, "PUT", "/v1/upstreams/app", "application/json", appUpstream); w.Code != http.StatusOK {
		t.Fatalf("upstream: %d %s", w.Code, w.Body)
	}
	w := e.do(t, "PUT", "/v1/vservers/site", "application/json", siteVServer)
	if w.Code != http.StatusOK || w.Header().Get("ETag") != `"1"` {
		t.Fatalf("vserver: %d %s", w.Code, w.Body)
	}
	w = e.do(t, "PUT", "/v1/vservers/site/locations/api", "application/json", apiLocationJSO)
	if v := decode[VServerView](t, w); w.Code != http.StatusOK || len(v.Locations) != 2 || v.Version != 2 {
		t.Fatalf("location: %d %s", w.Code, w.Body)
	}
	// A location removed at runtime, then added back.
	if w := e.do(t, "DELETE", "/v1/vservers/site/locations/api", "", ""); w.Code != http.StatusOK {
		t.Fatalf("delete location: %d %s", w.Code, w.Body)
	}
	w = e.do(t, "GET", "/v1/vservers/site", "", "")
	if v := decode[VServerView](t, w); len(v.Locations) != 1 || v.Locations[0].Name != "root" || v.Version != 3 {
		t.Fatalf("after the location's delete: %s", w.Body)
	}
	if w := e.do(t, "DELETE", "/v1/vservers/site/locations/api", "", ""); w.Code != http.StatusNotFound {
		t.Fatalf("delete a location that is gone: %d %s", w.Code, w.Body)
	}
	w = e.do(t, "PUT", "/v1/vservers/site/locations/api", "application/json", apiLocationJSO)
	if v := decode[VServerView](t, w); w.Code != http.StatusOK || len(v.Locations) != 2 || v.Version != 4 {
		t.Fatalf("location added back: %d %s", w.Code, w.Body)
	}

	// The dynamic upstream API: servers get ids, are patched and removed.
	w = e.do(t, "POST", "/v1/upstreams/app/servers", "application/json", `{"addr":"10.2.0.3:8080","backup":true}`)
	added := decode[ServerView](t, w)
	if w.Code != http.StatusCreated || added.ID != 3 || !added.Backup {
		t.Fatalf("add server: %d %s", w.Code, w.Body)
	}
	if w := e.do(t, "PATCH", "/v1/upstreams/app/servers/3", "application/json", `{"down":true,"weight":7}`); w.Code != http.StatusOK ||
		decode[ServerView](t, w).Weight != 7 || decode[ServerView](t, w).Available {
		t.Fatalf("patch server: %d %s", w.Code, w.Body)
	}
	if w := e.do(t, "PATCH", "/v1/upstreams/app/servers/3", "application/json", `{"addr":"not an address"}`); w.Code != http.StatusBadRequest {
		t.Fatalf("bad patch: %d %s", w.Code, w.Body)
	}
	if w := e.do(t, "DELETE", "/v1/upstreams/app/servers/1", "", ""); w.Code != http.StatusNoContent {
		t.Fatalf("delete server: %d %s", w.Code, w.Body)
	}
	if w := e.do(t, "GET", "/v1/upstreams/app/servers/1", "", ""); w.Code != http.StatusNotFound {
		t.Fatalf("deleted server: %d %s", w.Code, w.Body)
	}
	ids := []int{}
	for _, s := range e.proxy.Pool("app").Servers() {
		ids = append(ids, s.ID())
	}
	if len(ids) != 2 || ids[0] != 2 || ids[1] != 3 {
		t.Fatalf("the running pool has servers %v, want [2 3]", ids)
	}

	// Counters of an upstream are reset on request, and only for it.
	e.proxy.Stats().Server("app", "10.2.0.2:8080").Observe(stats.Sample{Status: 200})
	if w := e.do(t, "DELETE", "/v1/upstreams/app/stats", "", ""); w.Code != http.StatusNoContent {
		t.Fatalf("reset stats: %d %s", w.Code, w.Body)
	}
	if n := e.proxy.Stats().Snapshot().Upstreams["app"].Servers["10.2.0.2:8080"].Requests; n != 0 {
		t.Fatalf("after the reset the server still counts %d requests", n)
	}
	if w := e.do(t, "DELETE", "/v1/upstreams/nope/stats", "", ""); w.Code != http.StatusNotFound {
		t.Fatalf("reset stats of an unknown upstream: %d", w.Code)
	}

	// Things still in use cannot go.
	if w := e.do(t, "DELETE", "/v1/upstreams/app", "", ""); w.Code != http.StatusConflict {
		t.Fatalf("delete an upstream in use: %d %s", w.Code, w.Body)
	}
	if w := e.do(t, "DELETE", "/v1/services/web", "", ""); w.Code != http.StatusConflict {
		t.Fatalf("delete a service a vserver listens on: %d %s", w.Code, w.Body)
	}
	if !e.steer.on[vip] {
		t.Fatal("a refused delete stopped the steering")
	}

	// A restart restores all of it from the store.
	e.store.Close()
	e2 := newEnvAt(t, e.dir)
	w = e2.do(t, "GET", "/v1/upstreams/app", "", "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"10.2.0.3:8080"`) || strings.Contains(w.Body.String(), `"10.2.0.1:8080"`) {
		t.Fatalf("restored upstream: %d %s", w.Code, w.Body)
	}
	if w := e2.do(t, "GET", "/v1/vservers/site", "", ""); w.Code != http.StatusOK || w.Header().Get("ETag") != `"4"` {
		t.Fatalf("restored vserver: %d %s", w.Code, w.Body)
	}
	if !e2.steer.on[vip] {
		t.Fatal("the restored service is not steered")
	}

	// Taken down in order, everything goes.
	for _, path := range []string{"/v1/vservers/site", "/v1/upstreams/app", "/v1/services/web"} {
		if w := e2.do(t, "DELETE", path, "", ""); w.Code != http.StatusNoContent {
			t.Fatalf("delete %s: %d %s", path, w.Code, w.Body)
		}
	}
	if len(e2.steer.on) != 0 {
		t.Fatalf("still steered after the service went: %v", e2.steer.on)
	}
}

func TestL7BadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.do(t, "PUT", "/v1/services/web", "application/json", l7SvcJSON)
	e.do(t, "PUT", "/v1/upstreams/app", "application/json", appUpstream)
	e.do(t, "PUT", "/v1/vservers/site", "application/json", siteVServer)
	for _, tc := range []struct{ method, path, body string }{
		{"PUT", "/v1/upstreams/bad", `{"servers":[{"addr":"10.2.0.1"}]}`},                         // no port
		{"PUT", "/v1/upstreams/bad", `{"balancer":"fastest","servers":[]}`},                       // unknown balancer
		{"PUT", "/v1/vservers/site/locations/x", `{"match":"regex","path":"(","upstream":"app"}`}, // bad regex
		{"PUT", "/v1/vservers/site/locations/x", `{"path":"/x","upstream":"nope"}`},               // unknown upstream
		{"PUT", "/v1/certs/c", `{"cert":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----","key":"x"}`},
		{"PUT", "/v1/accesslog", `{"enabled":true,"format":"template","template":"$nope","path":"/tmp/x.log"}`},
		{"PUT", "/v1/services/web2", `{"vip":"203.0.113.80","port":80,"proto":"tcp","mode":"l7"}`},  // VIP clash
		{"PUT", "/v1/services/web3", `{"vip":"203.0.113.81","port":80,"proto":"udp","mode":"l7"}`},  // l7 is tcp
		{"PUT", "/v1/upstreams/app", `{"servers":[{"addr":"10.2.0.1:80"},{"addr":"10.2.0.1:80"}]}`}, // duplicate
	} {
		w := e.do(t, tc.method, tc.path, "application/json", tc.body)
		if w.Code != http.StatusBadRequest && w.Code != http.StatusConflict {
			t.Errorf("%s %s %s: %d %s", tc.method, tc.path, tc.body, w.Code, w.Body)
		}
	}
	w := e.do(t, "GET", "/v1/vservers/site", "", "")
	if v := decode[VServerView](t, w); len(v.Locations) != 1 || v.Version != 1 {
		t.Fatalf("vserver changed by rejected input: %s", w.Body)
	}
	if w := e.do(t, "GET", "/v1/upstreams/app", "", ""); !strings.Contains(w.Body.String(), `"least_conn"`) {
		t.Fatalf("upstream changed by rejected input: %s", w.Body)
	}

	// A steering failure leaves the service absent, not half there.
	e.steer.fail = true
	if w := e.do(t, "PUT", "/v1/services/other", "application/json", `{"vip":"203.0.113.90","port":80,"proto":"tcp","mode":"l7"}`); w.Code < 500 {
		t.Fatalf("steering failure: %d %s", w.Code, w.Body)
	}
	if w := e.do(t, "GET", "/v1/services/other", "", ""); w.Code != http.StatusNotFound {
		t.Fatalf("service kept after a steering failure: %d", w.Code)
	}
}

func TestL7ObjectVersionsGuardPutAndDelete(t *testing.T) {
	e := newEnv(t)
	if w := e.do(t, "PUT", "/v1/services/web", "application/json", l7SvcJSON); w.Code != http.StatusOK {
		t.Fatalf("l7 service: %d %s", w.Code, w.Body)
	}
	for _, o := range []struct{ path, body string }{
		{"/v1/upstreams/app", appUpstream},
		{"/v1/vservers/site", siteVServer},
	} {
		if w := e.do(t, "PUT", o.path, "application/json", o.body); w.Code != http.StatusOK || w.Header().Get("ETag") != `"1"` {
			t.Fatalf("PUT %s: %d %s %q", o.path, w.Code, w.Body, w.Header().Get("ETag"))
		}
		if w := e.do(t, "PUT", o.path, "application/json", o.body, "If-Match", `"7"`); w.Code != http.StatusPreconditionFailed {
			t.Fatalf("PUT %s with a stale If-Match: %d", o.path, w.Code)
		}
		if w := e.do(t, "PUT", o.path, "application/json", o.body, "If-Match", `"1"`); w.Code != http.StatusOK || w.Header().Get("ETag") != `"2"` {
			t.Fatalf("PUT %s with the current If-Match: %d %q", o.path, w.Code, w.Header().Get("ETag"))
		}
	}
	// Deleted in the reverse order (the vserver uses the upstream).
	for _, path := range []string{"/v1/vservers/site", "/v1/upstreams/app"} {
		if w := e.do(t, "DELETE", path, "", "", "If-Match", `"1"`); w.Code != http.StatusPreconditionFailed {
			t.Fatalf("DELETE %s with a stale If-Match: %d", path, w.Code)
		}
		if w := e.do(t, "DELETE", path, "", "", "If-Match", `"2"`); w.Code != http.StatusNoContent {
			t.Fatalf("DELETE %s: %d %s", path, w.Code, w.Body)
		}
		if w := e.do(t, "DELETE", path, "", ""); w.Code != http.StatusNotFound {
			t.Fatalf("DELETE %s again: %d", path, w.Code)
		}
	}
	// A new object of the name starts at version 1 again.
	if w := e.do(t, "PUT", "/v1/upstreams/app", "application/json", appUpstream); w.Code != http.StatusOK || w.Header().Get("ETag") != `"1"` {
		t.Fatalf("PUT after DELETE: %d %q", w.Code, w.Header().Get("ETag"))
	}
}
