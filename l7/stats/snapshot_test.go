package stats

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestHistogramBucketsAndQuantiles(t *testing.T) {
	c := NewRegistry().VServer("www")
	for range 90 {
		c.Observe(Sample{Status: 200, Duration: 700 * time.Microsecond}) // (0.0005, 0.001]
	}
	for range 10 {
		c.Observe(Sample{Status: 200, Duration: 300 * time.Millisecond}) // (0.2, 0.5]
	}
	h := c.totals().Latency
	if h.Count != 100 || math.Abs(h.Sum-(90*0.0007+10*0.3)) > 1e-9 {
		t.Errorf("count, sum = %d, %g; want 100, %g", h.Count, h.Sum, 90*0.0007+10*0.3)
	}
	want := map[float64]uint64{0.0005: 0, 0.001: 90, 0.1: 90, 0.2: 90, 0.5: 100, 60: 100}
	for _, b := range h.Buckets {
		if w, ok := want[b.LE]; ok && b.Count != w {
			t.Errorf("bucket le=%g holds %d, want %d", b.LE, b.Count, w)
		}
	}
	if len(h.Buckets) != len(bounds) {
		t.Errorf("%d buckets, want %d", len(h.Buckets), len(bounds))
	}
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"p50", h.P50, 0.0005 + 0.0005*50/90},
		{"p90", h.P90, 0.001},
		{"p99", h.P99, 0.2 + 0.3*9/10},
		{"q0", h.Quantile(0), 0.0005},
		{"q1", h.Quantile(1), 0.5},
	} {
		if math.Abs(tc.got-tc.want) > 1e-12 {
			t.Errorf("%s = %g, want %g", tc.name, tc.got, tc.want)
		}
	}
}

func TestQuantileBeyondTheLastBound(t *testing.T) {
	c := NewRegistry().VServer("www")
	c.Observe(Sample{Duration: time.Hour})
	if h := c.totals().Latency; h.P50 != 60 || h.Buckets[len(h.Buckets)-1].Count != 0 || h.Count != 1 {
		t.Errorf("histogram = %+v, want p50 60 and the hour only in count", h)
	}
	var empty *Histogram
	if q := empty.Quantile(0.5); q != 0 {
		t.Errorf("quantile of nil = %g, want 0", q)
	}
}

func TestSnapshotJSON(t *testing.T) {
	r := NewRegistry()
	r.VServer("www").Observe(Sample{Status: 200, BytesIn: 5, BytesOut: 50, Duration: 3 * time.Millisecond, UpstreamDuration: 2 * time.Millisecond})
	r.Location("www", "/api").Observe(Sample{Status: 404})
	r.Server("app", "10.0.0.1:8080").Observe(Sample{Status: 0, UpstreamDuration: time.Second})
	b, err := json.Marshal(r.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Time      time.Time
		VServers  map[string]map[string]any            `json:"vservers"`
		Locations map[string]map[string]map[string]any `json:"locations"`
		Upstreams map[string]struct {
			Servers map[string]map[string]any `json:"servers"`
		} `json:"upstreams"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Time.IsZero() {
		t.Errorf("no time in %s", b)
	}
	www := got.VServers["www"]
	for _, k := range []string{"requests", "bytes_in", "bytes_out", "active", "responses", "latency", "upstream_latency"} {
		if _, ok := www[k]; !ok {
			t.Errorf("vservers.www has no %q: %s", k, b)
		}
	}
	if rs := www["responses"].(map[string]any); rs["2xx"] != 1.0 || rs["xxx"] != 0.0 {
		t.Errorf("vservers.www.responses = %v", rs)
	}
	if lat := www["latency"].(map[string]any); lat["p50"] == nil || lat["buckets"] == nil {
		t.Errorf("vservers.www.latency = %v", lat)
	}
	if loc := got.Locations["www"]["/api"]; loc == nil || loc["latency"] != nil {
		t.Errorf("locations.www./api = %v, want no latency (none observed)", loc)
	}
	srv := got.Upstreams["app"].Servers["10.0.0.1:8080"]
	if srv["responses"].(map[string]any)["xxx"] != 1.0 || srv["upstream_latency"] == nil {
		t.Errorf("upstreams.app.servers = %v", srv)
	}
}

func TestEmptySnapshotHasEmptyMaps(t *testing.T) {
	b, err := json.Marshal(NewRegistry().Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"vservers", "locations", "upstreams"} {
		if m, ok := got[k].(map[string]any); !ok || len(m) != 0 {
			t.Errorf("%s = %v, want {}", k, got[k])
		}
	}
}
