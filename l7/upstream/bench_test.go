package upstream

import (
	"strconv"
	"testing"
)

var balancers = []string{BalancerRoundRobin, BalancerLeastConn, BalancerHash, BalancerRandom}

// BenchmarkPick measures one Pick over 16 servers of mixed weights, serial
// and from every CPU at once (where the round-robin mutex shows).
func BenchmarkPick(b *testing.B) {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "10.9." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
	}
	for _, bal := range balancers {
		p := testPool(b, Config{Name: "u", Balancer: bal, Servers: servers(16, 1, 2, 3, 4, 5, 6, 7, 8)}, nil)
		b.Run(bal, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p.Pick(keys[i%len(keys)], nil)
			}
		})
		b.Run(bal+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					s := p.Pick(keys[i%len(keys)], nil)
					s.Acquire()
					s.Release()
				}
			})
		})
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	for _, bal := range balancers {
		p := testPool(t, Config{Name: "u", Balancer: bal, Servers: servers(8, 1, 2, 3)}, nil)
		first := p.Pick("k", nil)
		fail(p.Servers()[5], 1)
		var buf [4]*Server
		tried := append(buf[:0], first)
		if n := testing.AllocsPerRun(200, func() { p.Pick("k", tried) }); n != 0 {
			t.Errorf("%s: Pick allocates %v times", bal, n)
		}
	}
}
