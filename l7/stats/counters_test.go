package stats

import (
	"sync"
	"testing"
	"time"
)

func TestObserveConcurrentSumsExactly(t *testing.T) {
	r := NewRegistry()
	c := r.VServer("www")
	const goroutines, each = 16, 2000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				c.ConnOpen()
				c.Observe(Sample{Status: 200 + 100*(i%4), BytesIn: 3, BytesOut: int64(g + 1),
					Duration: time.Millisecond, UpstreamDuration: 500 * time.Microsecond})
				c.ConnClose()
			}
		}()
	}
	wg.Wait()
	got := r.Snapshot().VServers["www"]
	const n = goroutines * each
	if got.Requests != n {
		t.Errorf("requests = %d, want %d", got.Requests, n)
	}
	if got.BytesIn != 3*n {
		t.Errorf("bytes_in = %d, want %d", got.BytesIn, 3*n)
	}
	if want := uint64(each * goroutines * (goroutines + 1) / 2); got.BytesOut != want {
		t.Errorf("bytes_out = %d, want %d", got.BytesOut, want)
	}
	if got.Active != 0 {
		t.Errorf("active = %d, want 0", got.Active)
	}
	want := Responses{Status2xx: n / 4, Status3xx: n / 4, Status4xx: n / 4, Status5xx: n / 4}
	if got.Responses != want {
		t.Errorf("responses = %+v, want %+v", got.Responses, want)
	}
	if got.Latency == nil || got.Latency.Count != n || got.Latency.Sum != float64(n)*0.001 {
		t.Errorf("latency = %+v, want count %d sum %g", got.Latency, n, float64(n)*0.001)
	}
	if got.UpstreamLatency == nil || got.UpstreamLatency.Count != n {
		t.Errorf("upstream latency = %+v, want count %d", got.UpstreamLatency, n)
	}
}

func TestActiveGauge(t *testing.T) {
	c := NewRegistry().VServer("www")
	c.ConnOpen()
	c.ConnOpen()
	c.ConnOpen()
	c.ConnClose()
	if got := c.totals().Active; got != 2 {
		t.Errorf("active = %d, want 2", got)
	}
}

func TestStatusClasses(t *testing.T) {
	c := NewRegistry().VServer("www")
	for _, st := range []int{0, 99, 100, 101, 199, 200, 204, 299, 301, 304, 400, 404, 499, 500, 502, 599, 600, 999, -1} {
		c.Observe(Sample{Status: st})
	}
	want := Responses{Status1xx: 3, Status2xx: 3, Status3xx: 2, Status4xx: 3, Status5xx: 3, Other: 5}
	if got := c.totals().Responses; got != want {
		t.Errorf("responses = %+v, want %+v", got, want)
	}
}

func TestNegativeBytesAndZeroDurationsAreNotCounted(t *testing.T) {
	c := NewRegistry().VServer("www")
	c.Observe(Sample{Status: 200, BytesIn: -5, BytesOut: -1})
	got := c.totals()
	if got.Requests != 1 || got.BytesIn != 0 || got.BytesOut != 0 || got.Latency != nil || got.UpstreamLatency != nil {
		t.Errorf("totals = %+v, want 1 request, no bytes, no histograms", got)
	}
}

func TestBucketOf(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{1, 0},
		{500 * time.Microsecond, 0}, // bounds are inclusive, like Prometheus's le
		{500*time.Microsecond + 1, 1},
		{time.Millisecond, 1},
		{3 * time.Millisecond, 3},
		{time.Second, 10},
		{time.Minute, 15},
		{time.Minute + 1, 16},
		{time.Hour, 16},
	} {
		if got := bucketOf(tc.d); got != tc.want {
			t.Errorf("bucketOf(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestObserveDoesNotAllocate(t *testing.T) {
	c := NewRegistry().VServer("www")
	s := Sample{Status: 200, BytesIn: 10, BytesOut: 100, Duration: 3 * time.Millisecond, UpstreamDuration: time.Millisecond}
	if n := testing.AllocsPerRun(1000, func() { c.ConnOpen(); c.Observe(s); c.ConnClose() }); n != 0 {
		t.Errorf("ConnOpen+Observe+ConnClose allocate %v times, want 0", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	c := NewRegistry().VServer("www")
	s := Sample{Status: 200, BytesIn: 10, BytesOut: 100, Duration: 3 * time.Millisecond, UpstreamDuration: time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		c.Observe(s)
	}
}

func BenchmarkObserveParallel(b *testing.B) {
	c := NewRegistry().VServer("www")
	s := Sample{Status: 200, BytesIn: 10, BytesOut: 100, Duration: 3 * time.Millisecond, UpstreamDuration: time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Observe(s)
		}
	})
}

// BenchmarkRequestParallel is what the proxy does for one proxied request:
// virtual server, location and upstream server, each opened, observed and
// closed, with the server looked up by name.
func BenchmarkRequestParallel(b *testing.B) {
	r := NewRegistry()
	vs, loc := r.VServer("www"), r.Location("www", "/api")
	for i := range 8 {
		r.Server("app", string(rune('a'+i)))
	}
	s := Sample{Status: 200, BytesIn: 10, BytesOut: 100, Duration: 3 * time.Millisecond, UpstreamDuration: time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			vs.ConnOpen()
			loc.ConnOpen()
			srv := r.Server("app", "c")
			srv.ConnOpen()
			srv.Observe(s)
			srv.ConnClose()
			loc.Observe(s)
			loc.ConnClose()
			vs.Observe(s)
			vs.ConnClose()
		}
	})
}
