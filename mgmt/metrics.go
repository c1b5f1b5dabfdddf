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

	svcPackets, svcBytes, svcFlows, bePackets, beBytes, beFlows *prometheus.Desc
	ctEntries, ctHits, ctCacheHits, ctMisses                    *prometheus.Desc
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

		svcPackets:  prometheus.NewDesc("sluice_service_packets_total", "Packets forwarded for each L4 service.", []string{"service"}, nil),
		svcBytes:    prometheus.NewDesc("sluice_service_bytes_total", "Bytes forwarded for each L4 service.", []string{"service"}, nil),
		svcFlows:    prometheus.NewDesc("sluice_service_new_flows_total", "Flows each L4 service took on.", []string{"service"}, nil),
		bePackets:   prometheus.NewDesc("sluice_backend_packets_total", "Packets forwarded to each backend.", []string{"service", "backend"}, nil),
		beBytes:     prometheus.NewDesc("sluice_backend_bytes_total", "Bytes forwarded to each backend.", []string{"service", "backend"}, nil),
		beFlows:     prometheus.NewDesc("sluice_backend_new_flows_total", "Flows each backend took on.", []string{"service", "backend"}, nil),
		ctEntries:   prometheus.NewDesc("sluice_conntrack_entries", "Flows in the L4 connection table.", nil, nil),
		ctHits:      prometheus.NewDesc("sluice_conntrack_hits_total", "Packets whose flow the connection table knew.", nil, nil),
		ctCacheHits: prometheus.NewDesc("sluice_conntrack_cache_hits_total", "Hits a CPU's flow cache served without a table lookup.", nil, nil),
		ctMisses:    prometheus.NewDesc("sluice_conntrack_misses_total", "Packets that went to the Maglev table (new flows, rehashed flows).", nil, nil),
	}
}

func (c *datapathCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.listDrops, c.drops, c.entries,
		c.svcPackets, c.svcBytes, c.svcFlows, c.bePackets, c.beBytes, c.beFlows, c.ctEntries, c.ctHits, c.ctCacheHits, c.ctMisses} {
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
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, sv := range st.L4.Services {
		counter(c.svcPackets, sv.Counter.Packets, sv.Name)
		counter(c.svcBytes, sv.Counter.Bytes, sv.Name)
		counter(c.svcFlows, sv.Counter.NewFlows, sv.Name)
		for be, n := range sv.Backends {
			counter(c.bePackets, n.Packets, sv.Name, be)
			counter(c.beBytes, n.Bytes, sv.Name, be)
			counter(c.beFlows, n.NewFlows, sv.Name, be)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.ctEntries, prometheus.GaugeValue, float64(st.L4.Entries))
	counter(c.ctHits, st.L4.Flows.Hits)
	counter(c.ctCacheHits, st.L4.Flows.CacheHits)
	counter(c.ctMisses, st.L4.Flows.Misses)
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
