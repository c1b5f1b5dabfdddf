package l4

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"testing"
)

func backendsN(n int, weight func(i int) uint16) []MaglevBackend {
	out := make([]MaglevBackend, n)
	for i := range out {
		out[i] = MaglevBackend{Addr: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Weight: weight(i)}
	}
	return out
}

func shares(table []uint32, n int) []float64 {
	out := make([]float64, n)
	for _, b := range table {
		if b != NoBackend {
			out[b]++
		}
	}
	for i := range out {
		out[i] /= float64(len(table))
	}
	return out
}

func checkShares(t *testing.T, bs []MaglevBackend, table []uint32) {
	t.Helper()
	var total float64
	for _, b := range bs {
		total += float64(b.Weight)
	}
	for i, got := range shares(table, len(bs)) {
		want := float64(bs[i].Weight) / total
		if d := got/want - 1; d > 0.02 || d < -0.02 {
			t.Errorf("backend %d (weight %d): share %.5f, want %.5f ±2%%", i, bs[i].Weight, got, want)
		}
	}
}

func TestEqualWeightsShareEvenly(t *testing.T) {
	for _, n := range []int{3, 10, 100} {
		bs := backendsN(n, func(int) uint16 { return 100 })
		table, err := BuildTable(bs, 65537)
		if err != nil {
			t.Fatal(err)
		}
		checkShares(t, bs, table)
	}
}

func TestWeightsShareProportionally(t *testing.T) {
	checkWeights := func(bs []MaglevBackend) {
		table, err := BuildTable(bs, 65537)
		if err != nil {
			t.Fatal(err)
		}
		checkShares(t, bs, table)
	}
	checkWeights(backendsN(3, func(i int) uint16 { return uint16(100 * (i + 1)) }))
	r := rand.New(rand.NewPCG(3, 4))
	checkWeights(backendsN(20, func(int) uint16 { return uint16(50 + r.IntN(200)) }))
}

func TestZeroWeightTakesNoPositions(t *testing.T) {
	bs := backendsN(4, func(i int) uint16 { return uint16(i % 2 * 100) })
	table, err := BuildTable(bs, 251)
	if err != nil {
		t.Fatal(err)
	}
	s := shares(table, 4)
	if s[0] != 0 || s[2] != 0 || s[1]+s[3] != 1 {
		t.Fatalf("shares %v: weight-0 backends hold positions or positions are empty", s)
	}
	empty, _ := BuildTable(backendsN(2, func(int) uint16 { return 0 }), 251)
	for _, b := range empty {
		if b != NoBackend {
			t.Fatal("a table of weight-0 backends has a backend")
		}
	}
}

func moved(a, b []uint32, bsA, bsB []MaglevBackend) int {
	n := 0
	for i := range a {
		var x, y netip.Addr
		if a[i] != NoBackend {
			x = bsA[a[i]].Addr
		}
		if b[i] != NoBackend {
			y = bsB[b[i]].Addr
		}
		if x != y {
			n++
		}
	}
	return n
}

// TestRemovingAndAddingMovesFewPositions checks the 1.2/N bound. Classic
// Maglev meets it when the table is large against the backend count: at
// M = 65537 it holds up to N ≈ 40 (N = 100 moves about 1.5/N), so larger N
// are checked at M = 524287.
func TestRemovingAndAddingMovesFewPositions(t *testing.T) {
	for _, c := range []struct {
		n int
		m uint32
	}{{10, 65537}, {30, 65537}, {50, 524287}, {100, 524287}} {
		n, m := c.n, c.m
		bs := backendsN(n, func(int) uint16 { return 100 })
		full, _ := BuildTable(bs, m)
		less := append(append([]MaglevBackend{}, bs[:n/2]...), bs[n/2+1:]...)
		fewer, _ := BuildTable(less, m)
		if got, limit := moved(full, fewer, bs, less), 1.2/float64(n)*float64(m); float64(got) > limit {
			t.Errorf("removing 1 of %d moved %d positions, want ≤ %.0f", n, got, limit)
		}
		more := append(append([]MaglevBackend{}, bs...), MaglevBackend{Addr: netip.MustParseAddr("10.2.0.1"), Weight: 100})
		bigger, _ := BuildTable(more, m)
		if got, limit := moved(full, bigger, bs, more), 1.2/float64(n+1)*float64(m); float64(got) > limit {
			t.Errorf("adding 1 to %d moved %d positions, want ≤ %.0f", n, got, limit)
		}
	}
}

func TestTableIgnoresInputOrder(t *testing.T) {
	bs := backendsN(30, func(i int) uint16 { return uint16(10 + i) })
	a, _ := BuildTable(bs, 65537)
	shuffled := append([]MaglevBackend{}, bs...)
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b, _ := BuildTable(shuffled, 65537)
	for i := range a {
		if bs[a[i]].Addr != shuffled[b[i]].Addr {
			t.Fatalf("position %d differs with the input shuffled", i)
		}
	}
}

func tableDigest(t *testing.T) string {
	bs := backendsN(100, func(i int) uint16 { return uint16(1 + i*7%300) })
	bs = append(bs, MaglevBackend{Addr: netip.MustParseAddr("2001:db8::7"), Weight: 55})
	table, err := BuildTable(bs, 65537)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, b := range table {
		fmt.Fprintf(h, "%s,", bs[b].Addr)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestTwoLoadBalancersAgree builds the same table in another process.
func TestTwoLoadBalancersAgree(t *testing.T) {
	if os.Getenv("SLUICE_MAGLEV_CHILD") == "1" {
		fmt.Println(tableDigest(t))
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestTwoLoadBalancersAgree$")
	cmd.Env = append(os.Environ(), "SLUICE_MAGLEV_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := tableDigest(t); len(out) < len(want) || string(out[:len(want)]) != want {
		t.Fatalf("the other process built %q, this one %s", out, want)
	}
}

func TestTableSizeMustBePrime(t *testing.T) {
	for _, m := range []uint32{0, 100, 65536, 250, 1_000_004} {
		if _, err := BuildTable(backendsN(2, func(int) uint16 { return 1 }), m); err == nil {
			t.Errorf("size %d accepted", m)
		}
	}
	if _, err := BuildTable(append(backendsN(2, func(int) uint16 { return 1 }), backendsN(1, func(int) uint16 { return 1 })...), 251); err == nil {
		t.Error("a duplicate backend was accepted")
	}
}

func BenchmarkBuildTable(b *testing.B) {
	bs := backendsN(1000, func(i int) uint16 { return uint16(100 + i%50) })
	for b.Loop() {
		if _, err := BuildTable(bs, 65537); err != nil {
			b.Fatal(err)
		}
	}
}
