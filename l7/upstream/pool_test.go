package upstream

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestBackupTakesRequestsOnlyWhenNoPrimaryIsAvailable(t *testing.T) {
	clk := newFakeClock()
	sc := servers(3)
	sc[2].Backup = true
	p := testPool(t, Config{Name: "u", Servers: sc}, clk)
	if got := count(p, 100, nil); got["10.0.0.3:80"] != 0 {
		t.Fatalf("the backup took requests while the primaries were up: %v", got)
	}
	fail(byAddr(t, p, "10.0.0.1:80"), 1)
	if got := count(p, 100, nil); got["10.0.0.2:80"] != 100 {
		t.Fatalf("with one primary failed: %v, want all on the other primary", got)
	}
	fail(byAddr(t, p, "10.0.0.2:80"), 1)
	if got := count(p, 100, nil); got["10.0.0.3:80"] != 100 {
		t.Fatalf("with every primary failed: %v, want all on the backup", got)
	}
	clk.Add(10 * time.Second)
	if got := count(p, 100, nil); got["10.0.0.3:80"] != 0 {
		t.Errorf("after fail_timeout the primaries are back, yet the backup still got %v", got)
	}
}

func TestDownServersNeverTakeRequests(t *testing.T) {
	sc := servers(3)
	sc[0].Down = true
	sc[2].Down, sc[2].Backup = true, true
	p := testPool(t, Config{Name: "u", Servers: sc}, nil)
	if got := count(p, 100, nil); got["10.0.0.2:80"] != 100 {
		t.Errorf("picks %v, want all on the one server not down", got)
	}
	if s := byAddr(t, p, "10.0.0.1:80"); s.Available(time.Now()) {
		t.Errorf("a down server reports itself available")
	}
	p.Update(Config{Name: "u", Servers: []ServerConfig{{Addr: "10.0.0.1:80", Down: true}}})
	if s := p.Pick("", nil); s != nil {
		t.Errorf("a pool of down servers picked %s", s.Addr())
	}
}

func TestWhenEveryServerFailedPickTakesTheOneBackSoonest(t *testing.T) {
	clk := newFakeClock()
	sc := servers(3)
	sc[2].Backup = true
	p := testPool(t, Config{Name: "u", Servers: sc}, clk)
	fail(byAddr(t, p, "10.0.0.2:80"), 1)
	clk.Add(time.Second)
	fail(byAddr(t, p, "10.0.0.1:80"), 1)
	fail(byAddr(t, p, "10.0.0.3:80"), 1)
	if s := p.Pick("", nil); s == nil || s.Addr() != "10.0.0.2:80" {
		t.Errorf("every server failed: picked %v, want the primary that failed first", s)
	}
}

func TestUpdateKeepsTheStateOfServersThatStay(t *testing.T) {
	clk := newFakeClock()
	sc := servers(3)
	p := testPool(t, Config{Name: "u", Servers: sc}, clk)
	a, b := byAddr(t, p, "10.0.0.1:80"), byAddr(t, p, "10.0.0.2:80")
	a.Acquire()
	a.Acquire()
	fail(b, 1)
	ids := map[string]int{}
	for _, s := range p.Servers() {
		ids[s.Addr()] = s.ID()
	}

	// By id: 10.0.0.1 reweighted, 10.0.0.2 kept, 10.0.0.3 gone, one new.
	next := []ServerConfig{
		{ID: ids["10.0.0.1:80"], Addr: "10.0.0.1:80", Weight: 4},
		{ID: ids["10.0.0.2:80"], Addr: "10.0.0.2:80"},
		{Addr: "10.0.0.9:80"},
	}
	if err := p.Update(Config{Name: "u", Servers: next}); err != nil {
		t.Fatal(err)
	}
	a2, b2 := byAddr(t, p, "10.0.0.1:80"), byAddr(t, p, "10.0.0.2:80")
	if a2.Active() != 2 || a2.Config().Weight != 4 {
		t.Errorf("10.0.0.1 after update: active %d weight %d, want 2 and 4", a2.Active(), a2.Config().Weight)
	}
	if b2.Available(clk.Now()) {
		t.Errorf("10.0.0.2 forgot its failure in the update")
	}
	if n := byAddr(t, p, "10.0.0.9:80").ID(); n == 0 || n == ids["10.0.0.3:80"] {
		t.Errorf("the new server got id %d (ids before: %v)", n, ids)
	}
	// A request that picked a before the update releases into the state
	// the new server uses.
	a.Release()
	if a2.Active() != 1 {
		t.Errorf("release through the old *Server: new one has %d active, want 1", a2.Active())
	}

	// By address, without ids: the servers keep their ids and state.
	if err := p.Update(Config{Name: "u", Servers: []ServerConfig{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80"}}}); err != nil {
		t.Fatal(err)
	}
	a3 := byAddr(t, p, "10.0.0.1:80")
	if a3.ID() != ids["10.0.0.1:80"] || a3.Active() != 1 {
		t.Errorf("matched by address: id %d active %d, want %d and 1", a3.ID(), a3.Active(), ids["10.0.0.1:80"])
	}
	if byAddr(t, p, "10.0.0.2:80").Available(clk.Now()) {
		t.Errorf("matched by address: 10.0.0.2 forgot its failure")
	}

	// Same id, new address: a new machine, a clean record.
	if err := p.Update(Config{Name: "u", Servers: []ServerConfig{{ID: ids["10.0.0.2:80"], Addr: "10.0.0.22:80"}}}); err != nil {
		t.Fatal(err)
	}
	if !byAddr(t, p, "10.0.0.22:80").Available(clk.Now()) {
		t.Errorf("a server moved to a new address kept the old one's failure")
	}
}

func TestABadUpdateChangesNothing(t *testing.T) {
	p := testPool(t, Config{Name: "u", Servers: servers(2)}, nil)
	before := p.Config()
	err := p.Update(Config{Name: "u", Servers: []ServerConfig{{Addr: "10.0.0.5:80"}, {Addr: "nope"}}})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("update with a bad addr: %v, want ErrInvalid", err)
	}
	if after := p.Config(); len(after.Servers) != 2 || after.Servers[0] != before.Servers[0] || after.Servers[1] != before.Servers[1] {
		t.Errorf("a bad update changed the pool: %+v", after.Servers)
	}
	if _, err := p.AddServer(ServerConfig{Addr: "10.0.0.1:80"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("adding a duplicate address: %v, want ErrInvalid", err)
	}
	if _, err := p.UpdateServer(before.Servers[0].ID, func(s *ServerConfig) { s.Weight = -3 }); !errors.Is(err, ErrInvalid) {
		t.Errorf("patching a bad weight: %v, want ErrInvalid", err)
	}
	if got := p.Config(); got.Servers[0].Weight != 1 {
		t.Errorf("a rejected patch changed the weight to %d", got.Servers[0].Weight)
	}
}

func TestServerAPIAssignsIDsAndFindsServers(t *testing.T) {
	p := testPool(t, Config{Name: "u", Servers: []ServerConfig{{ID: 7, Addr: "10.0.0.1:80"}}}, nil)
	sc, err := p.AddServer(ServerConfig{Addr: "10.0.0.2:80", Weight: 3})
	if err != nil {
		t.Fatal(err)
	}
	if sc.ID != 8 || sc.Weight != 3 || sc.MaxFails != 1 || sc.FailTimeout != Duration(10*time.Second) {
		t.Errorf("added server: %+v, want id 8 with defaults", sc)
	}
	if _, err := p.AddServer(ServerConfig{ID: 7, Addr: "10.0.0.3:80"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("adding a taken id: %v, want ErrInvalid", err)
	}
	sc, err = p.UpdateServer(8, func(s *ServerConfig) { s.Weight, s.ID = 9, 100 })
	if err != nil || sc.ID != 8 || sc.Weight != 9 {
		t.Errorf("patched server: %+v %v, want id 8 weight 9", sc, err)
	}
	if _, err := p.UpdateServer(42, func(*ServerConfig) {}); !errors.Is(err, ErrNoServer) {
		t.Errorf("patching a missing server: %v, want ErrNoServer", err)
	}
	if err := p.RemoveServer(42); !errors.Is(err, ErrNoServer) {
		t.Errorf("removing a missing server: %v, want ErrNoServer", err)
	}
	if err := p.RemoveServer(7); err != nil {
		t.Fatal(err)
	}
	// Ids are not reused after a removal.
	if sc, _ := p.AddServer(ServerConfig{Addr: "10.0.0.4:80"}); sc.ID != 9 {
		t.Errorf("next id after 7 and 8: %d, want 9", sc.ID)
	}
	if p.Server(8) == nil || p.Server(7) != nil {
		t.Errorf("Server(id) does not follow the changes")
	}
	if err := p.RemoveServer(8); err != nil {
		t.Fatal(err)
	}
	if err := p.RemoveServer(9); err != nil {
		t.Fatal(err)
	}
	if s := p.Pick("", nil); s != nil || len(p.Servers()) != 0 {
		t.Errorf("an emptied pool picked %v", s)
	}
}

func TestConcurrentPickUpdateReport(t *testing.T) {
	for _, b := range []string{BalancerRoundRobin, BalancerLeastConn, BalancerHash, BalancerRandom} {
		t.Run(b, func(t *testing.T) {
			p := testPool(t, Config{Name: "u", Balancer: b, Servers: servers(4)}, nil)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var tried []*Server
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						s := p.Pick(keyN(i), tried[:0])
						if s == nil {
							continue
						}
						s.Acquire()
						s.Report(i%7 != g)
						_ = s.Available(time.Now())
						s.Release()
						tried = append(tried[:0], s)
					}
				}()
			}
			for i := range 200 {
				n := 2 + i%3
				if err := p.Update(Config{Name: "u", Balancer: b, Servers: servers(n, i%5+1)}); err != nil {
					t.Error(err)
				}
				if i%10 == 0 {
					sc, err := p.AddServer(ServerConfig{Addr: "10.0.1.1:80"})
					if err != nil {
						t.Error(err)
					}
					p.UpdateServer(sc.ID, func(s *ServerConfig) { s.Down = true })
					p.RemoveServer(sc.ID)
				}
				_ = p.Config()
				_ = p.Servers()
			}
			close(stop)
			wg.Wait()
			for _, s := range p.Servers() {
				if s.Active() != 0 {
					t.Errorf("%s has %d active after every request released", s.Addr(), s.Active())
				}
			}
		})
	}
}

// PickAt judges the servers' time outs at the clock it is given, not the
// pool's: the HTTP/1.1 loop passes the request's start.
func TestPickAtJudgesFailuresAtTheGivenClock(t *testing.T) {
	clk := newFakeClock()
	p := testPool(t, Config{Name: "u", Servers: servers(2)}, clk)
	fail(byAddr(t, p, "10.0.0.1:80"), 1)
	failedAt := clk.Now()
	for range 4 {
		if s := p.PickAt("", nil, failedAt.Add(time.Second)); s == nil || s.Addr() != "10.0.0.2:80" {
			t.Fatalf("a second after the failure: picked %v, want 10.0.0.2:80 only", s)
		}
	}
	// The pool's own clock has not moved; the clock given has.
	back := failedAt.Add(DefaultFailTimeout + time.Second)
	got := map[string]int{}
	for range 4 {
		got[p.PickAt("", nil, back).Addr()]++
	}
	if got["10.0.0.1:80"] == 0 {
		t.Errorf("past the fail timeout by the given clock: picks %v, want 10.0.0.1:80 among them", got)
	}
}
