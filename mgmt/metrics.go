package mgmt

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// datapathCollector reads the BPF counters on every scrape, so the numbers
// are never older than the scrape.
type datapathCollector struct {
	stats func() (Stats, error)
	acl   *aclState

	packets, bytes, listDrops, drops, entries *prometheus.Desc
}

func newDatapathCollector(stats func() (Stats, error), acl *aclState) *datapathCollector {
	return &datapathCollector{
		stats:     stats,
		acl:       acl,
		packets:   prometheus.NewDesc("sluice_xdp_packets_total", "Packets seen by XDP, by interface and verdict.", []string{"iface", "verdict"}, nil),
		bytes:     prometheus.NewDesc("sluice_xdp_bytes_total", "Bytes seen by XDP, by interface and verdict.", []string{"iface", "verdict"}, nil),
		listDrops: prometheus.NewDesc("sluice_acl_drops_total", "Packets dropped because a list holds their source.", []string{"list"}, nil),
		drops:     prometheus.NewDesc("sluice_drops_total", "Packets dropped by XDP, by reason.", []string{"reason"}, nil),
		entries:   prometheus.NewDesc("sluice_acl_entries", "Prefixes in each list.", []string{"list"}, nil),
	}
}

func (c *datapathCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.listDrops, c.drops, c.entries} {
		ch <- d
	}
}

func (c *datapathCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.stats()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.packets, err)
		return
	}
	for _, i := range st.Interfaces {
		for v, n := range i.Verdicts {
			ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(n.Packets), i.Name, v)
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(n.Bytes), i.Name, v)
		}
	}
	for r, n := range st.Drops {
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(n.Packets), r)
	}
	for _, l := range st.Lists {
		ch <- prometheus.MustNewConstMetric(c.listDrops, prometheus.CounterValue, float64(l.Drops.Packets), l.Name)
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(l.Entries), l.Name)
	}
}

// newRegistry builds the daemon's registry and returns it with the observer
// of sync durations.
func newRegistry(stats func() (Stats, error), acl *aclState) (*prometheus.Registry, func(time.Duration)) {
	reg := prometheus.NewRegistry()
	syncs := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sluice_acl_sync_duration_seconds",
		Help:    "Time to apply a list write, from parsed body to stored state.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
	})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_build_info", Help: "Build information; always 1."},
		[]string{"version", "goversion"})
	info.WithLabelValues(Version, runtime.Version()).Set(1)
	reg.MustRegister(syncs, info, newDatapathCollector(stats, acl),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, func(d time.Duration) { syncs.Observe(d.Seconds()) }
}
