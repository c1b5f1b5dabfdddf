package upstream

import (
	"testing"
)

func TestTriedServersAreSkipped(t *testing.T) {
	for _, b := range []string{BalancerRoundRobin, BalancerLeastConn, BalancerHash, BalancerRandom} {
		t.Run(b, func(t *testing.T) {
			sc := servers(4)
			sc[3].Backup = true
			p := testPool(t, Config{Name: "u", Balancer: b, Servers: sc}, nil)
			var tried []*Server
			for range 4 {
				s := p.Pick("some-key", tried)
				if s == nil {
					t.Fatalf("nil after %d tries of 4 servers", len(tried))
				}
				for _, o := range tried {
					if o == s {
						t.Fatalf("picked %s again after trying it", s.Addr())
					}
				}
				if len(tried) == 3 && !s.Config().Backup {
					t.Fatalf("the 4th try went to %s, want the backup", s.Addr())
				}
				tried = append(tried, s)
			}
			if s := p.Pick("some-key", tried); s != nil {
				t.Errorf("picked %s after every server was tried", s.Addr())
			}
		})
	}
}

func TestTriedServersAreSkippedAcrossAnUpdate(t *testing.T) {
	p := testPool(t, Config{Name: "u", Servers: servers(2)}, nil)
	first := p.Pick("", nil)
	if err := p.Update(Config{Name: "u", Servers: servers(2, 1, 5)}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if s := p.Pick("", []*Server{first}); s.Addr() == first.Addr() {
			t.Fatalf("a retry after an update went back to %s", s.Addr())
		}
	}
}
