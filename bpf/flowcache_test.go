package bpf_test

import (
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/sluicelb/sluice/bpf"
	"github.com/sluicelb/sluice/l4"
)

// onCPU runs f on CPU cpu, as the packets of a NIC queue run on its CPU:
// prog.Run runs the program on the caller's CPU, with that CPU's cache.
func onCPU(t *testing.T, cpu int, f func()) {
	t.Helper()
	if runtime.NumCPU() <= cpu {
		t.Fatalf("CPU %d wanted, %d online", cpu, runtime.NumCPU())
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig, one unix.CPUSet
	must(t, unix.SchedGetaffinity(0, &orig))
	one.Set(cpu)
	must(t, unix.SchedSetaffinity(0, &one))
	defer func() { must(t, unix.SchedSetaffinity(0, &orig)) }()
	f()
}

// A flow that CPU 0 cached on a, and that CPU 1 moved to b while a was down,
// goes to b from CPU 0 too once a is back: where the table says, not where
// CPU 0 last sent it.
func TestFlowCacheFollowsTheTableAcrossCPUs(t *testing.T) {
	p := loadLB(t)
	a, b := "10.1.0.11", "10.1.0.12"
	svc := service("web", vip4, 443, l4.ModeDSRIPIP, a, b)
	must(t, p.rec.Set(svc))
	port, _ := findFlow(t, func(f l4.Flow) bool { return p.backendOf(t, "web", f).String() == a })
	onCPU(t, 0, func() {
		if got := p.sentTo(t, port); got.String() != a {
			t.Fatalf("flow went to %s, want %s", got, a)
		}
		s0 := p.flowStats(t)
		if got := p.sentTo(t, port); got.String() != a {
			t.Fatalf("next packet went to %s, want %s", got, a)
		}
		if s1 := p.flowStats(t); s1.CacheHits != s0.CacheHits+1 || s1.Hits != s0.Hits+1 {
			t.Fatalf("next packet: cache hits %d → %d, hits %d → %d, want one hit from the cache",
				s0.CacheHits, s1.CacheHits, s0.Hits, s1.Hits)
		}
	})

	down := svc
	down.Backends = append([]l4.Backend(nil), svc.Backends...)
	down.Backends[0].State = l4.Down
	must(t, p.rec.Set(down))
	onCPU(t, 1, func() {
		if got := p.sentTo(t, port); got.String() != b {
			t.Fatalf("flow off a down backend went to %s, want %s", got, b)
		}
	})
	must(t, p.rec.Set(svc))
	onCPU(t, 0, func() {
		if got := p.sentTo(t, port); got.String() != b {
			t.Errorf("CPU 0 sent the flow to %s, where its cache had it, not to %s, where the table has it", got, b)
		}
	})
}

// The cache serves a flow's packets but every FLOW_CACHE_REFRESH-th (32), which
// goes to the connection table, whose LRU then sees the flow in use.
func TestFlowCacheTurnsToTheTable(t *testing.T) {
	p := loadLB(t)
	must(t, p.rec.Set(service("web", vip4, 443, l4.ModeDSRIPIP, "10.1.0.11", "10.1.0.12")))
	onCPU(t, 0, func() {
		p.sentTo(t, 40000)
		s0 := p.flowStats(t)
		for range 64 {
			p.sentTo(t, 40000)
		}
		s1 := p.flowStats(t)
		if s1.Hits-s0.Hits != 64 || s1.CacheHits-s0.CacheHits != 62 || s1.Misses != s0.Misses {
			t.Errorf("64 packets of a known flow: %d hits, %d of them from the cache, %d misses; want 64, 62, 0",
				s1.Hits-s0.Hits, s1.CacheHits-s0.CacheHits, s1.Misses-s0.Misses)
		}
	})
}

// Two flows whose cache slot is the same, on different backends, each keep
// theirs when their packets alternate: the slot holds one flow at a time, and
// the other finds it not its own.
func TestFlowsSharingACacheSlotKeepTheirBackends(t *testing.T) {
	p := loadLB(t)
	a, b := "10.1.0.11", "10.1.0.12"
	must(t, p.rec.Set(service("web", vip4, 443, l4.ModeDSRIPIP, a, b)))
	slots := p.objs.LbFlowCache.MaxEntries()
	slotOf := func(f l4.Flow) uint32 { return l4.TunnelHash(f) & (slots - 1) }
	// Ports of a's flows by slot, until one of b's flows meets one.
	var portA, portB uint16
	onA := map[uint32]uint16{}
	for port := uint16(1024); portB == 0 && port < 65535; port++ {
		f := flow(client4, port, vip4, 443)
		switch p.backendOf(t, "web", f).String() {
		case a:
			onA[slotOf(f)] = port
		case b:
			portA, portB = onA[slotOf(f)], port
			if portA == 0 {
				portB = 0
			}
		}
	}
	if portB == 0 {
		t.Fatal("no two flows share a slot")
	}
	onCPU(t, 0, func() {
		for i := range 6 {
			port, want := portA, a
			if i%2 == 1 {
				port, want = portB, b
			}
			if got := p.sentTo(t, port); got.String() != want {
				t.Fatalf("packet %d, of the flow from port %d, went to %s, want %s", i, port, got, want)
			}
		}
	})
}

// A cache given 64 slots has them, and puts a flow in its slot among those
// 64: a flow whose slot among the default 16,384 lies past them is served
// from the cache all the same. A size that is not a power of two is refused.
func TestFlowCacheTakesItsSize(t *testing.T) {
	p := loadLB(t, func(spec *ebpf.CollectionSpec) { must(t, bpf.SetFlowCacheSlots(spec, 64)) })
	if n := p.objs.LbFlowCache.MaxEntries(); n != 64 {
		t.Fatalf("flow cache of %d slots, want 64", n)
	}
	must(t, p.rec.Set(service("web", vip4, 443, l4.ModeDSRIPIP, "10.1.0.11", "10.1.0.12")))
	port, _ := findFlow(t, func(f l4.Flow) bool { return l4.TunnelHash(f)&(1<<14-1) >= 64 })
	onCPU(t, 0, func() {
		p.sentTo(t, port)
		s0 := p.flowStats(t)
		p.sentTo(t, port)
		if s1 := p.flowStats(t); s1.CacheHits != s0.CacheHits+1 {
			t.Errorf("the flow's next packet did not come from the cache (cache hits %d → %d)", s0.CacheHits, s1.CacheHits)
		}
	})
	spec, err := bpf.LoadXDP()
	must(t, err)
	if err := bpf.SetFlowCacheSlots(spec, 48); err == nil {
		t.Error("a flow cache of 48 slots was accepted")
	}
}
