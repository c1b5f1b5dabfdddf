package mgmt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/sluicelb/sluice/l4"
	"github.com/sluicelb/sluice/l7"
	"github.com/sluicelb/sluice/maps"
)

type testEnv struct {
	srv    *Server
	h      http.Handler
	v4, v6 *maps.Fake
	policy *maps.FakePolicy
	dir    string
	store  *Store
	lb     *maps.FakeLB
	proxy  *l7.Proxy
	steer  *fakeSteer
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	dir := t.TempDir()
	return newEnvAt(t, dir)
}

func newEnvAt(t testing.TB, dir string) *testEnv {
	t.Helper()
	store, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := &testEnv{v4: maps.NewFake(), v6: maps.NewFake(), policy: &maps.FakePolicy{}, dir: dir, store: store}
	state := newACLState(store, maps.NewACL(e.v4, e.v6), e.policy, slog.New(slog.NewTextHandler(io.Discard, nil)))
	st, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := state.restore(st); err != nil {
		t.Fatal(err)
	}
	if err := state.reconcile(); err != nil {
		t.Fatal(err)
	}
	e.lb = maps.NewFakeLB()
	rec, err := l4.NewReconciler(e.lb, func(a netip.Addr) (l4.NextHop, error) {
		return l4.NextHop{MAC: net.HardwareAddr{2, 0, 0, 0, 0, a.AsSlice()[a.BitLen()/8-1]}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	svcs := newSvcState(store, rec, e.lb, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := svcs.restore(st); err != nil {
		t.Fatal(err)
	}
	e.srv = NewServer(state, svcs, func() Status { return Status{Version: Version} },
		func() (Stats, error) { return collectStats(&maps.FakeStats{}, nil, state) }, 1<<20)
	proxy, err := l7.New(l7.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	e.proxy, e.steer = proxy, &fakeSteer{on: map[netip.AddrPort]bool{}}
	l7st := newL7State(store, proxy, e.steer, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svcs.onL7 = l7st.setEndpoints
	if err := l7st.restore(st.L7, svcs.L7Endpoints()); err != nil {
		t.Fatal(err)
	}
	e.srv.SetL7(l7st, proxy)
	e.h = e.srv.Handler()
	return e
}

// fakeSteer records which endpoints are steered to the proxy.
type fakeSteer struct {
	mu   sync.Mutex
	on   map[netip.AddrPort]bool
	fail bool
}

func (f *fakeSteer) Add(ap netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("injected steering failure")
	}
	f.on[ap] = true
	return nil
}

func (f *fakeSteer) Remove(ap netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.on, ap)
	return nil
}

func (e *testEnv) do(t *testing.T, method, path, ctype, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", w.Body.String(), err)
	}
	return v
}

type errorBody struct {
	Error struct {
		Code    string
		Message string
		Details []BadLine
	}
}

func TestSyncValidatesWholeBodyAndNamesBadLines(t *testing.T) {
	e := newEnv(t)
	if w := e.do(t, "PUT", "/v1/acl/lists/bad?kind=deny", "text/plain", "10.0.0.0/8\n"); w.Code != 200 {
		t.Fatalf("first sync: %d %s", w.Code, w.Body)
	}
	var b strings.Builder
	for i := 1; i <= 10000; i++ {
		switch i {
		case 3:
			b.WriteString("10.0.0.300/8\n")
		case 8123:
			b.WriteString("10.1.0.1/16 # host bits\n")
		case 9000:
			b.WriteString("   # only a comment\n")
		default:
			fmt.Fprintf(&b, "11.%d.%d.0/24\n", i>>8, i&255)
		}
	}
	w := e.do(t, "PUT", "/v1/acl/lists/bad", "text/plain", b.String())
	if w.Code != 400 {
		t.Fatalf("status %d, want 400: %s", w.Code, w.Body)
	}
	eb := decode[errorBody](t, w)
	if eb.Error.Code != "invalid_entries" || len(eb.Error.Details) != 2 || eb.Error.Details[0].Line != 3 || eb.Error.Details[1].Line != 8123 {
		t.Fatalf("error = %+v, want lines 3 and 8123", eb.Error)
	}
	// Nothing applied: the list still holds its one entry at version 1.
	l := decode[ListContent](t, e.do(t, "GET", "/v1/acl/lists/bad", "", ""))
	if l.Version != "1" || len(l.Entries) != 1 || e.v4.Len() != 1 {
		t.Fatalf("list after a rejected sync: %+v, trie %d entries", l, e.v4.Len())
	}
}

func TestBadLinesAreCappedAtAHundred(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, "PUT", "/v1/acl/lists/x", "text/plain", strings.Repeat("nope\n", 250))
	eb := decode[errorBody](t, w)
	if w.Code != 400 || len(eb.Error.Details) != 100 || !strings.HasPrefix(eb.Error.Message, "250 invalid lines") {
		t.Fatalf("%d %+v", w.Code, eb.Error.Message)
	}
}

func TestSyncAnswersTheDifference(t *testing.T) {
	e := newEnv(t)
	e.do(t, "PUT", "/v1/acl/lists/l", "text/plain", "10.0.0.1\n10.0.0.2\n2001:db8::/32\n")
	w := e.do(t, "PUT", "/v1/acl/lists/l", "application/json", `{"kind":"deny","entries":["10.0.0.2","10.0.0.3","2001:db8::/32"]}`)
	res := decode[SyncResult](t, w)
	if w.Code != 200 || res.Added != 1 || res.Removed != 1 || res.Entries != 3 || res.Version != "2" || w.Header().Get("ETag") != `"2"` {
		t.Fatalf("%d %+v etag %s", w.Code, res, w.Header().Get("ETag"))
	}
}

func TestIfMatch(t *testing.T) {
	e := newEnv(t)
	e.do(t, "PUT", "/v1/acl/lists/l", "text/plain", "10.0.0.1\n")
	if w := e.do(t, "PUT", "/v1/acl/lists/l", "text/plain", "10.0.0.2\n", "If-Match", `"7"`); w.Code != 412 {
		t.Fatalf("stale If-Match: %d, want 412", w.Code)
	}
	if w := e.do(t, "PATCH", "/v1/acl/lists/l", "application/json", `{"add":["10.0.0.9"]}`, "If-Match", `"1"`); w.Code != 200 {
		t.Fatalf("current If-Match: %d %s", w.Code, w.Body)
	}
	if w := e.do(t, "DELETE", "/v1/acl/lists/l", "", "", "If-Match", "1"); w.Code != 412 {
		t.Fatalf("stale If-Match on delete: %d, want 412", w.Code)
	}
	if w := e.do(t, "DELETE", "/v1/acl/lists/l", "", "", "If-Match", "2"); w.Code != 204 {
		t.Fatalf("delete: %d", w.Code)
	}
	if w := e.do(t, "GET", "/v1/acl/lists/l", "", ""); w.Code != 404 {
		t.Fatalf("deleted list: %d, want 404", w.Code)
	}
}

func TestOversizedBodyGets413(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, "PUT", "/v1/acl/lists/big", "text/plain", strings.Repeat("10.0.0.1\n", 200_000))
	if w.Code != 413 || decode[errorBody](t, w).Error.Code != "body_too_large" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

func TestTruncatedJSONGets400(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, "PUT", "/v1/acl/lists/j", "application/json", `{"kind":"deny","entries":["10.0.0.1",`)
	if w.Code != 400 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

func TestTokenGuardsTCP(t *testing.T) {
	e := newEnv(t)
	h := TokenHandler(e.h, "s3cret")
	for _, c := range []struct {
		auth string
		want int
	}{{"", 401}, {"Bearer wrong", 401}, {"Bearer s3cret", 200}} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("auth %q: %d, want %d", c.auth, w.Code, c.want)
		}
	}
}

func TestConcurrentSyncsEndConsistent(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	versions := make(chan int, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf("10.%d.0.0/16\n10.%d.1.0/24\n", g, g)
			w := e.do(t, "PUT", "/v1/acl/lists/shared", "text/plain", body)
			if w.Code != 200 {
				t.Errorf("sync: %d %s", w.Code, w.Body)
				return
			}
			var v int
			fmt.Sscan(decode[SyncResult](t, w).Version, &v)
			versions <- v
		}()
	}
	wg.Wait()
	close(versions)
	seen := map[int]bool{}
	for v := range versions {
		if seen[v] {
			t.Fatalf("version %d reported twice", v)
		}
		seen[v] = true
	}
	l := decode[ListContent](t, e.do(t, "GET", "/v1/acl/lists/shared", "", ""))
	if l.Version != "8" || len(l.Entries) != 2 || e.v4.Len() != 2 {
		t.Fatalf("final state %+v with %d trie entries; want version 8 and one writer's 2 entries", l, e.v4.Len())
	}
}

func TestKindSwitchAndCheck(t *testing.T) {
	e := newEnv(t)
	e.do(t, "PUT", "/v1/acl/lists/l?kind=deny", "text/plain", "10.0.0.0/8\n")
	c := decode[CheckResult](t, e.do(t, "GET", "/v1/acl/check?ip=10.1.2.3", "", ""))
	if c.Verdict != "drop" || c.Reason != "acl_deny" || len(c.Lists) != 1 || c.Lists[0].Prefix != "10.0.0.0/8" {
		t.Fatalf("check = %+v", c)
	}
	e.do(t, "PUT", "/v1/acl/lists/l?kind=allow", "text/plain", "10.0.0.0/8\n")
	p, _ := e.policy.Policy()
	if p.AllowLists != 1 || p.DenyLists != 0 {
		t.Fatalf("policy after kind switch = %+v", p)
	}
	e.do(t, "PUT", "/v1/acl/policy", "application/json", `{"mode":"allow"}`)
	if c := decode[CheckResult](t, e.do(t, "GET", "/v1/acl/check?ip=192.0.2.1", "", "")); c.Reason != "acl_not_allowed" {
		t.Fatalf("check unlisted in allow mode = %+v", c)
	}
	e.do(t, "PUT", "/v1/acl/protect", "application/json", `{"prefixes":["192.0.2.0/24"]}`)
	if c := decode[CheckResult](t, e.do(t, "GET", "/v1/acl/check?ip=192.0.2.1", "", "")); c.Verdict != "pass" || c.Reason != "protected" {
		t.Fatalf("check protected = %+v", c)
	}
	if w := e.do(t, "PUT", "/v1/acl/policy", "application/json", `{"mode":"maybe"}`); w.Code != 400 {
		t.Fatalf("bad mode: %d", w.Code)
	}
	if w := e.do(t, "GET", "/v1/nope", "", ""); w.Code != 404 || decode[errorBody](t, w).Error.Code != "not_found" {
		t.Fatalf("unknown route: %d %s", w.Code, w.Body)
	}
}

func TestListLimitIs63(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < maps.MaxLists; i++ {
		if w := e.do(t, "PUT", fmt.Sprintf("/v1/acl/lists/l%d", i), "text/plain", ""); w.Code != 200 {
			t.Fatalf("list %d: %d", i, w.Code)
		}
	}
	if w := e.do(t, "PUT", "/v1/acl/lists/one-too-many", "text/plain", ""); w.Code != 409 {
		t.Fatalf("64th list: %d, want 409", w.Code)
	}
}

func TestRestartRestoresExactly(t *testing.T) {
	dir := t.TempDir()
	e := newEnvAt(t, dir)
	e.do(t, "PUT", "/v1/acl/lists/a?kind=allow", "text/plain", "10.0.0.0/8\n2001:db8::/32\n")
	e.do(t, "PATCH", "/v1/acl/lists/b", "application/json", `{"add":["192.0.2.1","2001:db8::1"]}`)
	e.do(t, "PUT", "/v1/acl/policy", "application/json", `{"mode":"allow"}`)
	e.do(t, "PUT", "/v1/acl/protect", "application/json", `{"prefixes":["198.51.100.0/24"]}`)
	before := e.do(t, "GET", "/v1/acl", "", "").Body.String() + e.do(t, "GET", "/v1/acl/lists/b", "", "").Body.String()
	e.store.Close()
	e2 := newEnvAt(t, dir)
	after := e2.do(t, "GET", "/v1/acl", "", "").Body.String() + e2.do(t, "GET", "/v1/acl/lists/b", "", "").Body.String()
	if after != before {
		t.Fatalf("after restart:\n%s\nwant:\n%s", after, before)
	}
	if e2.v4.Len() != 3 || e2.v6.Len() != 2 {
		t.Fatalf("restored tries hold %d v4 and %d v6 entries", e2.v4.Len(), e2.v6.Len())
	}
}

func TestPatchJournalFoldsAndRestores(t *testing.T) {
	dir := t.TempDir()
	e := newEnvAt(t, dir)
	e.do(t, "PUT", "/v1/acl/lists/j", "text/plain", "10.0.0.0/8\n")
	for i := 0; i < maxJournal+10; i++ {
		body := fmt.Sprintf(`{"add":["192.0.%d.%d"],"remove":["192.0.%d.%d"]}`, i>>8, i&255, (i-1)>>8&255, (i-1)&255)
		if i%2 == 1 {
			body = fmt.Sprintf(`{"add":["192.0.%d.%d"]}`, i>>8, i&255)
		}
		if w := e.do(t, "PATCH", "/v1/acl/lists/j", "application/json", body); w.Code != 200 {
			t.Fatalf("patch %d: %d %s", i, w.Code, w.Body)
		}
	}
	before := e.do(t, "GET", "/v1/acl/lists/j", "", "").Body.String()
	e.store.Close()
	e2 := newEnvAt(t, dir)
	if after := e2.do(t, "GET", "/v1/acl/lists/j", "", "").Body.String(); after != before {
		t.Fatalf("after restart:\n%.300s\nwant:\n%.300s", after, before)
	}
}
