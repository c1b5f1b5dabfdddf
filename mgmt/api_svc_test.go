package mgmt

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/sluicelb/sluice/maps"
)

const webJSON = `{"vip":"203.0.113.10","port":443,"proto":"tcp","mode":"dsr-ipip",
	"backends":[{"addr":"10.1.0.11"},{"addr":"10.1.0.12","weight":200}]}`

func (e *testEnv) tableShares(t *testing.T) map[netip.Addr]int {
	t.Helper()
	shares := map[netip.Addr]int{}
	for _, s := range e.lb.ServicesMap {
		for _, id := range e.lb.Tables[s.ID] {
			if id != maps.NoBackend {
				shares[e.lb.BackendMap[id].Addr]++
			}
		}
	}
	return shares
}

func TestServiceLifecycle(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, "PUT", "/v1/services/web", "application/json", webJSON)
	if w.Code != http.StatusOK {
		t.Fatalf("put: %d %s", w.Code, w.Body)
	}
	v := decode[ServiceView](t, w)
	if v.Version != 1 || v.TableSize != 65537 || v.Backends[0].Weight != 100 || v.Backends[1].Weight != 200 || w.Header().Get("ETag") != `"1"` {
		t.Fatalf("put answered %+v, ETag %s", v, w.Header().Get("ETag"))
	}
	// The datapath got a table in proportion to the weights.
	shares := e.tableShares(t)
	a, b := shares[netip.MustParseAddr("10.1.0.11")], shares[netip.MustParseAddr("10.1.0.12")]
	if a+b != 65537 || b < 2*a-1000 || b > 2*a+1000 {
		t.Fatalf("table shares %d : %d, want 1 : 2 of 65537", a, b)
	}

	// Drain one backend: out of the table, still a backend.
	w = e.do(t, "PATCH", "/v1/services/web/backends/10.1.0.11", "application/json", `{"state":"drain"}`, "If-Match", `"1"`)
	if w.Code != http.StatusOK {
		t.Fatalf("patch: %d %s", w.Code, w.Body)
	}
	if shares := e.tableShares(t); shares[netip.MustParseAddr("10.1.0.11")] != 0 || len(e.lb.BackendMap) != 2 {
		t.Fatalf("drained backend still in the table: %v", shares)
	}
	if w := e.do(t, "PATCH", "/v1/services/web/backends/10.1.0.11", "application/json", `{"weight":5}`, "If-Match", `"1"`); w.Code != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match: %d", w.Code)
	}
	if w := e.do(t, "PATCH", "/v1/services/web/backends/10.9.9.9", "application/json", `{"weight":5}`); w.Code != http.StatusNotFound {
		t.Fatalf("unknown backend: %d", w.Code)
	}

	// A restart restores it, version and all.
	e.store.Close()
	e = newEnvAt(t, e.dir)
	w = e.do(t, "GET", "/v1/services/web", "", "")
	got := decode[ServiceView](t, w)
	if w.Code != http.StatusOK || got.Version != 2 || got.Backends[0].State != "drain" {
		t.Fatalf("after restart: %d %+v", w.Code, got)
	}

	if w := e.do(t, "DELETE", "/v1/services/web", "", ""); w.Code != http.StatusNoContent {
		t.Fatalf("delete: %d", w.Code)
	}
	if len(e.lb.ServicesMap) != 0 || len(e.lb.BackendMap) != 0 || len(e.lb.Tables) != 0 || len(e.lb.VIPs) != 0 {
		t.Fatalf("delete left %v %v %v %v", e.lb.ServicesMap, e.lb.BackendMap, e.lb.Tables, e.lb.VIPs)
	}
	if w := e.do(t, "GET", "/v1/services/web", "", ""); w.Code != http.StatusNotFound {
		t.Fatalf("get after delete: %d", w.Code)
	}
}

func TestServiceValidation(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ body, want string }{
		{`{"vip":"203.0.113.10","port":443,"proto":"sctp","mode":"dsr-ipip"}`, "proto"},
		{`{"vip":"203.0.113.10","port":443,"proto":"tcp","mode":"dsr-ipip","table_size":65536}`, "table_size"},
		{`{"vip":"203.0.113.10","port":443,"proto":"tcp","mode":"dsr-ipip","backends":[{"addr":"2001:db8::1"}]}`, "address family"},
		{`{"vip":"203.0.113.10","port":443,"proto":"tcp","mode":"dsr-ipip","backends":[{"addr":"10.0.0.1"},{"addr":"10.0.0.1"}]}`, "twice"},
		{`{"vip":"nope","port":443,"proto":"tcp","mode":"dsr-ipip"}`, "invalid JSON"},
		{`{"vip":"203.0.113.10","port":443,"proto":"tcp","mode":"dsr-ipip","extra":1}`, "unknown field"},
		{`{"vip":"203.0.113.10","port":443,"proto":"tcp","mode":"dsr-ipip"`, "invalid JSON"},
	} {
		w := e.do(t, "PUT", "/v1/services/web", "application/json", c.body)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("%s: %d %s, want 400 naming %q", c.body, w.Code, w.Body, c.want)
		}
	}
	if len(e.lb.ServicesMap) != 0 || len(e.lb.BackendMap) != 0 {
		t.Fatalf("invalid services reached the datapath")
	}
	if w := e.do(t, "PUT", "/v1/services/web", "application/json", webJSON); w.Code != http.StatusOK {
		t.Fatalf("put: %d %s", w.Code, w.Body)
	}
	// Same VIP, port and proto under another name: a clash.
	if w := e.do(t, "PUT", "/v1/services/web2", "application/json", webJSON); w.Code != http.StatusConflict {
		t.Fatalf("clash: %d %s", w.Code, w.Body)
	}
	if w := e.do(t, "PUT", "/v1/services/web", "application/json", webJSON, "If-Match", `"7"`); w.Code != http.StatusPreconditionFailed {
		t.Fatalf("If-Match: %d", w.Code)
	}
	w := e.do(t, "GET", "/v1/services", "", "")
	if got := decode[struct{ Services []ServiceView }](t, w); len(got.Services) != 1 || got.Services[0].Name != "web" {
		t.Fatalf("list: %s", w.Body)
	}
}
