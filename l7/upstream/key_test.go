package upstream

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestKeyForExtractsTheConfiguredKey(t *testing.T) {
	r := httptest.NewRequest("GET", "/a/b?c=d", nil)
	r.RemoteAddr = "[2001:db8::1]:4242"
	r.Header.Set("X-User", "u1")
	r.Header.Add("Cookie", "a=1; sid=\"s-99\"; b=2")
	for key, want := range map[string]string{
		"client_ip":     "2001:db8::1",
		"uri":           "/a/b?c=d",
		"header:x-user": "u1",
		"header:X-None": "",
		"cookie:sid":    "s-99",
		"cookie:b":      "2",
		"cookie:none":   "",
	} {
		p := testPool(t, Config{Name: "u", Balancer: BalancerHash, HashKey: key, Servers: servers(1)}, nil)
		if got := p.KeyFor(r); got != want {
			t.Errorf("KeyFor with hash_key %s = %q, want %q", key, got, want)
		}
	}
	p := testPool(t, Config{Name: "u", Servers: servers(1)}, nil)
	if got := p.KeyFor(r); got != "" {
		t.Errorf("round_robin pool: KeyFor = %q, want \"\"", got)
	}
	// The default hash key is the client address.
	p = testPool(t, Config{Name: "u", Balancer: BalancerHash, Servers: servers(1)}, nil)
	r.RemoteAddr = "192.0.2.7:1234"
	if got := p.KeyFor(r); got != "192.0.2.7" || p.Config().HashKey != HashClientIP {
		t.Errorf("hash without hash_key: key %q (%s), want the client ip", got, p.Config().HashKey)
	}
}

func TestKeyForCookieDoesNotAllocate(t *testing.T) {
	p := testPool(t, Config{Name: "u", Balancer: BalancerHash, HashKey: "cookie:sid", Servers: servers(1)}, nil)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header = http.Header{"Cookie": {"a=1; sid=abc"}}
	if n := testing.AllocsPerRun(100, func() { p.KeyFor(r) }); n != 0 {
		t.Errorf("KeyFor allocates %v times", n)
	}
}
