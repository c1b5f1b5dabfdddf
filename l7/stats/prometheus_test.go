package stats

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
)

// gather scrapes r through a Prometheus registry and returns the families by
// name and every sample as "name{l1=v1,l2=v2}" → value (histograms as their
// _count, _sum and _bucket samples).
func gather(t *testing.T, r *Registry) ([]*dto.MetricFamily, map[string]float64) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(r.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	samples := map[string]float64{}
	key := func(name string, m *dto.Metric, extra ...string) string {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		ls = append(ls, extra...)
		sort.Strings(ls)
		return name + "{" + strings.Join(ls, ",") + "}"
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				samples[key(mf.GetName(), m)] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				samples[key(mf.GetName(), m)] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				samples[key(mf.GetName()+"_count", m)] = float64(h.GetSampleCount())
				samples[key(mf.GetName()+"_sum", m)] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					samples[key(mf.GetName()+"_bucket", m, fmt.Sprintf("le=%g", b.GetUpperBound()))] = float64(b.GetCumulativeCount())
				}
			default:
				t.Errorf("%s has type %v", mf.GetName(), mf.GetType())
			}
		}
	}
	return mfs, samples
}

func TestCollector(t *testing.T) {
	r := NewRegistry()
	vs, loc, srv := r.VServer("www"), r.Location("www", "/api"), r.Server("app", "10.0.0.1:8080")
	vs.ConnOpen()
	loc.ConnOpen()
	srv.ConnOpen()
	s := Sample{Status: 503, BytesIn: 7, BytesOut: 70, Duration: 3 * time.Millisecond, UpstreamDuration: 2 * time.Millisecond}
	vs.Observe(s)
	vs.Observe(Sample{Status: 200, Duration: 300 * time.Millisecond})
	loc.Observe(s)
	srv.Observe(Sample{Status: 503, BytesOut: 70, UpstreamDuration: 2 * time.Millisecond})
	for range 3 {
		r.ClientOpened()
	}
	r.ClientClosed()

	mfs, got := gather(t, r)

	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	wantNames := []string{
		"sluice_l7_active_connections", "sluice_l7_bytes_total",
		"sluice_l7_client_connections", "sluice_l7_client_connections_accepted_total",
		"sluice_l7_location_active_connections", "sluice_l7_location_bytes_total",
		"sluice_l7_location_request_duration_seconds", "sluice_l7_location_requests_total",
		"sluice_l7_location_responses_total", "sluice_l7_location_upstream_duration_seconds",
		"sluice_l7_request_duration_seconds",
		"sluice_l7_requests_total", "sluice_l7_responses_total",
		"sluice_l7_upstream_active_connections", "sluice_l7_upstream_bytes_total",
		"sluice_l7_upstream_duration_seconds",
		"sluice_l7_upstream_requests_total", "sluice_l7_upstream_response_duration_seconds",
		"sluice_l7_upstream_responses_total",
	}
	if !slices.Equal(names, wantNames) {
		t.Errorf("families = %q\nwant %q", names, wantNames)
	}

	want := map[string]float64{
		"sluice_l7_requests_total{vserver=www}":                                                           2,
		"sluice_l7_client_connections{}":                                                                  2,
		"sluice_l7_client_connections_accepted_total{}":                                                   3,
		"sluice_l7_responses_total{class=2xx,vserver=www}":                                                1,
		"sluice_l7_responses_total{class=5xx,vserver=www}":                                                1,
		"sluice_l7_responses_total{class=xxx,vserver=www}":                                                0,
		"sluice_l7_bytes_total{direction=in,vserver=www}":                                                 7,
		"sluice_l7_bytes_total{direction=out,vserver=www}":                                                70,
		"sluice_l7_active_connections{vserver=www}":                                                       1,
		"sluice_l7_request_duration_seconds_count{vserver=www}":                                           2,
		"sluice_l7_request_duration_seconds_sum{vserver=www}":                                             0.303,
		"sluice_l7_request_duration_seconds_bucket{le=0.002,vserver=www}":                                 0,
		"sluice_l7_request_duration_seconds_bucket{le=0.005,vserver=www}":                                 1,
		"sluice_l7_request_duration_seconds_bucket{le=0.5,vserver=www}":                                   2,
		"sluice_l7_location_requests_total{location=/api,vserver=www}":                                    1,
		"sluice_l7_location_responses_total{class=5xx,location=/api,vserver=www}":                         1,
		"sluice_l7_location_bytes_total{direction=in,location=/api,vserver=www}":                          7,
		"sluice_l7_location_active_connections{location=/api,vserver=www}":                                1,
		"sluice_l7_location_request_duration_seconds_count{location=/api,vserver=www}":                    1,
		"sluice_l7_upstream_duration_seconds_count{vserver=www}":                                          1,
		"sluice_l7_upstream_duration_seconds_sum{vserver=www}":                                            0.002,
		"sluice_l7_upstream_duration_seconds_bucket{le=0.002,vserver=www}":                                1,
		"sluice_l7_location_upstream_duration_seconds_count{location=/api,vserver=www}":                   1,
		"sluice_l7_upstream_requests_total{server=10.0.0.1:8080,upstream=app}":                            1,
		"sluice_l7_upstream_responses_total{class=5xx,server=10.0.0.1:8080,upstream=app}":                 1,
		"sluice_l7_upstream_responses_total{class=1xx,server=10.0.0.1:8080,upstream=app}":                 0,
		"sluice_l7_upstream_bytes_total{direction=out,server=10.0.0.1:8080,upstream=app}":                 70,
		"sluice_l7_upstream_active_connections{server=10.0.0.1:8080,upstream=app}":                        1,
		"sluice_l7_upstream_response_duration_seconds_count{server=10.0.0.1:8080,upstream=app}":           1,
		"sluice_l7_upstream_response_duration_seconds_sum{server=10.0.0.1:8080,upstream=app}":             0.002,
		"sluice_l7_upstream_response_duration_seconds_bucket{le=0.002,server=10.0.0.1:8080,upstream=app}": 1,
		"sluice_l7_upstream_response_duration_seconds_bucket{le=0.001,server=10.0.0.1:8080,upstream=app}": 0,
	}
	for k, w := range want {
		if v, ok := got[k]; !ok {
			t.Errorf("no sample %s", k)
		} else if diff := v - w; diff > 1e-12 || diff < -1e-12 {
			t.Errorf("%s = %g, want %g", k, v, w)
		}
	}
	// one vserver: 1 requests + 6 classes + 2 directions + 1 active + 1 histogram
	if n := len(mfs[0].GetMetric()) + len(mfs[1].GetMetric()); n != 1+2 {
		t.Errorf("%d active+bytes series for one vserver, want 3", n)
	}

	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestCollectorFollowsRetain(t *testing.T) {
	r := NewRegistry()
	r.VServer("a").Observe(Sample{Status: 200})
	r.VServer("b").Observe(Sample{Status: 200})
	r.Retain([]string{"a"}, nil, nil)
	_, got := gather(t, r)
	if _, ok := got["sluice_l7_requests_total{vserver=b}"]; ok {
		t.Error("a forgotten vserver is still exported")
	}
	if got["sluice_l7_requests_total{vserver=a}"] != 1 {
		t.Error("a retained vserver is not exported")
	}
}
