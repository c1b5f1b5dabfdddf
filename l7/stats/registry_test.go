package stats

import (
	"testing"
	"time"
)

func TestLookupReturnsTheSamePointer(t *testing.T) {
	r := NewRegistry()
	if r.VServer("a") != r.VServer("a") || r.VServer("a") == r.VServer("b") {
		t.Error("VServer: want one Counters per name")
	}
	if r.Location("a", "/x") != r.Location("a", "/x") || r.Location("a", "/x") == r.Location("b", "/x") {
		t.Error("Location: want one Counters per (vserver, location)")
	}
	if r.Server("u", "10.0.0.1:80") != r.Server("u", "10.0.0.1:80") || r.Server("u", "10.0.0.1:80") == r.Server("v", "10.0.0.1:80") {
		t.Error("Server: want one Counters per (upstream, addr)")
	}
	if r.VServer("a") == r.Location("a", "") {
		t.Error("a vserver and a location share Counters")
	}
}

func TestRetainForgets(t *testing.T) {
	r := NewRegistry()
	keep := r.VServer("keep")
	keep.Observe(Sample{Status: 200})
	r.VServer("gone").Observe(Sample{Status: 200})
	keepLoc := r.Location("keep", "/a")
	r.Location("keep", "/b")
	r.Location("gone", "/a")
	keepSrv := r.Server("app", "10.0.0.1:80")
	r.Server("app", "10.0.0.2:80")
	r.Server("old", "10.0.0.1:80")

	r.Retain([]string{"keep", "never-used"}, [][2]string{{"keep", "/a"}}, [][2]string{{"app", "10.0.0.1:80"}})

	s := r.Snapshot()
	if len(s.VServers) != 1 || s.VServers["keep"].Requests != 1 {
		t.Errorf("vservers = %+v, want only keep with its 1 request", s.VServers)
	}
	if len(s.Locations) != 1 || len(s.Locations["keep"]) != 1 {
		t.Errorf("locations = %+v, want only keep /a", s.Locations)
	}
	if len(s.Upstreams) != 1 || len(s.Upstreams["app"].Servers) != 1 {
		t.Errorf("upstreams = %+v, want only app 10.0.0.1:80", s.Upstreams)
	}
	if r.VServer("keep") != keep || r.Location("keep", "/a") != keepLoc || r.Server("app", "10.0.0.1:80") != keepSrv {
		t.Error("retained names got new Counters")
	}
	if got := r.VServer("gone").totals().Requests; got != 0 {
		t.Errorf("a forgotten vserver used again has %d requests, want 0", got)
	}
}

func TestResetUpstreamZeroesOnlyThatUpstream(t *testing.T) {
	r := NewRegistry()
	s := Sample{Status: 502, BytesOut: 10, UpstreamDuration: time.Millisecond}
	a1, a2, b := r.Server("a", "1:80"), r.Server("a", "2:80"), r.Server("b", "1:80")
	vs := r.VServer("a")
	for _, c := range []*Counters{a1, a2, b, vs} {
		c.Observe(s)
		c.ConnOpen()
	}
	r.ResetUpstream("a")
	snap := r.Snapshot()
	for addr, got := range snap.Upstreams["a"].Servers {
		if got.Requests != 0 || got.BytesOut != 0 || got.Responses != (Responses{}) || got.UpstreamLatency != nil {
			t.Errorf("a %s after reset = %+v, want zeros", addr, got)
		}
		if got.Active != 1 {
			t.Errorf("a %s active = %d, want 1: reset keeps requests in flight", addr, got.Active)
		}
	}
	if got := snap.Upstreams["b"].Servers["1:80"]; got.Requests != 1 || got.UpstreamLatency == nil {
		t.Errorf("b 1:80 = %+v, want untouched", got)
	}
	if got := snap.VServers["a"]; got.Requests != 1 {
		t.Errorf("vserver a = %+v, want untouched", got)
	}
	r.ResetUpstream("none") // no such upstream: nothing happens
}

func TestRegistryConcurrentUse(t *testing.T) {
	r := NewRegistry()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			r.Retain([]string{"a"}, nil, [][2]string{{"u", "1"}})
			r.ResetUpstream("u")
			_ = r.Snapshot()
		}
	}()
	for i := range 2000 {
		r.VServer("a").Observe(Sample{Status: 200})
		r.Server("u", string(rune('0'+i%4))).Observe(Sample{Status: 200})
		r.Location("a", "/").ConnOpen()
	}
	<-done
}
