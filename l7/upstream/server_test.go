package upstream

import (
	"testing"
	"time"
)

func TestPassiveHealthTakesAServerOutAfterMaxFailsAndBackAfterFailTimeout(t *testing.T) {
	clk := newFakeClock()
	sc := servers(2)
	sc[0].MaxFails, sc[0].FailTimeout = 3, Duration(30*time.Second)
	p := testPool(t, Config{Name: "u", Servers: sc}, clk)
	s := byAddr(t, p, "10.0.0.1:80")
	fail(s, 2)
	if !s.Available(clk.Now()) {
		t.Fatalf("out after 2 of max_fails=3 failures")
	}
	clk.Add(10 * time.Second)
	s.Report(false)
	if s.Available(clk.Now()) {
		t.Fatalf("still available after 3 failures within fail_timeout")
	}
	if got := count(p, 10, nil); got[s.Addr()] != 0 {
		t.Fatalf("a failed server got picks: %v", got)
	}
	clk.Add(29 * time.Second)
	if s.Available(clk.Now()) {
		t.Fatalf("back after 29s of a 30s fail_timeout")
	}
	clk.Add(time.Second)
	if !s.Available(clk.Now()) {
		t.Fatalf("not back after fail_timeout")
	}
	if got := count(p, 10, nil); got[s.Addr()] != 5 {
		t.Errorf("back after fail_timeout but got %v", got)
	}
	// On probation: one more failure before a success takes it out again.
	s.Report(false)
	if s.Available(clk.Now()) {
		t.Errorf("a failure right after coming back did not take it out again")
	}
	clk.Add(30 * time.Second)
	s.Report(true)
	fail(s, 2)
	if !s.Available(clk.Now()) {
		t.Errorf("after a success, 2 failures took it out again (max_fails=3)")
	}
}

func TestFailuresOutsideTheWindowDoNotAddUp(t *testing.T) {
	clk := newFakeClock()
	sc := servers(1)
	sc[0].MaxFails = 2
	p := testPool(t, Config{Name: "u", Servers: sc}, clk)
	s := p.Servers()[0]
	s.Report(false)
	clk.Add(11 * time.Second) // past the default 10s window
	s.Report(false)
	if !s.Available(clk.Now()) {
		t.Errorf("two failures 11s apart took it out with fail_timeout 10s")
	}
	s.Report(false)
	if s.Available(clk.Now()) {
		t.Errorf("two failures in the window did not take it out")
	}
}

func TestMaxFailsOffKeepsAFailingServer(t *testing.T) {
	sc := servers(1)
	sc[0].MaxFails = MaxFailsDisabled
	p := testPool(t, Config{Name: "u", Servers: sc}, nil)
	s := p.Servers()[0]
	fail(s, 100)
	if !s.Available(time.Now()) {
		t.Errorf("max_fails -1 still took the server out")
	}
}

func TestASuccessClearsTheFailures(t *testing.T) {
	sc := servers(1)
	sc[0].MaxFails = 2
	p := testPool(t, Config{Name: "u", Servers: sc}, nil)
	s := p.Servers()[0]
	s.Report(false)
	s.Report(true)
	s.Report(false)
	if !s.Available(time.Now()) || s.Fails() != 1 {
		t.Errorf("fail, success, fail took it out (fails %d)", s.Fails())
	}
}
