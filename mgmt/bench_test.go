package mgmt

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/sluicelb/sluice/maps"
)

// BenchmarkPatchOneVisible measures a single-entry PATCH through the API
// handler, against the real maps with 1M entries loaded, until the datapath
// drops a packet from the added address (checked with prog.Run). It reports
// the p99 over the iterations.
func BenchmarkPatchOneVisible(b *testing.B) {
	if _, err := maps.EnsureBPFFS("/sys/fs/bpf"); err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp("/sys/fs/bpf", "sluice-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dp, err := maps.OpenDatapath(maps.DatapathOptions{PinDir: dir, ACLMaxEntries: 1 << 21})
	if err != nil {
		b.Fatal(err)
	}
	defer dp.Close()
	acl, err := dp.ACL()
	if err != nil {
		b.Fatal(err)
	}
	store, err := OpenStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	state := newACLState(store, acl, dp.Policy(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	h := NewServer(state, nil, func() Status { return Status{} }, func() (Stats, error) { return Stats{}, nil }, 1<<30).Handler()

	var body strings.Builder
	for i := 0; i < 1_000_000; i++ {
		fmt.Fprintf(&body, "%d.%d.%d.%d\n", 11+i>>16, (i>>8)&255, i&255, 1+i%250)
	}
	if w := serve(h, "PUT", "/v1/acl/lists/big", "text/plain", body.String()); w.Code != 200 {
		b.Fatalf("load: %d %s", w.Code, w.Body)
	}
	pkt := make([]byte, 64)
	pkt[12], pkt[13], pkt[14] = 0x08, 0x00, 0x45
	binary.BigEndian.PutUint16(pkt[16:], 50)
	var lat []time.Duration
	i := 0
	for b.Loop() {
		addr := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		copy(pkt[26:30], addr.AsSlice())
		start := time.Now()
		w := serve(h, "PATCH", "/v1/acl/lists/big", "application/json", `{"add":["`+addr.String()+`"]}`)
		if w.Code != 200 {
			b.Fatalf("patch: %d %s", w.Code, w.Body)
		}
		ret, err := dp.Program().Run(&ebpf.RunOptions{Data: pkt})
		if err != nil || ret != 1 {
			b.Fatalf("datapath verdict %d (%v) after the PATCH answered, want drop", ret, err)
		}
		lat = append(lat, time.Since(start))
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
}

func serve(h http.Handler, method, path, ctype, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Content-Type", ctype)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}
