package stats

import "github.com/prometheus/client_golang/prometheus"

// descs are the metrics of one kind of Counters: virtual servers, locations
// or upstream servers, each with its own label names.
type descs struct {
	requests, responses, bytes, active, latency *prometheus.Desc
	upstreamLatency                             bool             // latency is the upstream histogram
	upstream                                    *prometheus.Desc // the upstream histogram besides; nil for servers
}

func newDescs(prefix, what, latencyName, latencyHelp string, labels ...string) descs {
	return descs{
		requests:  prometheus.NewDesc(prefix+"requests_total", "Requests finished at each "+what+".", labels, nil),
		responses: prometheus.NewDesc(prefix+"responses_total", "Responses of each "+what+" by status class (xxx: no response).", with(labels, "class"), nil),
		bytes:     prometheus.NewDesc(prefix+"bytes_total", "Bytes of each "+what+"'s requests (in) and responses (out), heads and bodies.", with(labels, "direction"), nil),
		active:    prometheus.NewDesc(prefix+"active_connections", "Connections with a request in flight at each "+what+" (idle keep-alive ones are not active).", labels, nil),
		latency:   prometheus.NewDesc(latencyName, latencyHelp, labels, nil),
	}
}

// withUpstream adds the histogram of the time to the upstream's response
// header, which a virtual server and a location keep beside their own.
func withUpstream(d descs, name, help string, labels ...string) descs {
	d.upstream = prometheus.NewDesc(name, help, labels, nil)
	return d
}

var (
	vserverDescs = withUpstream(newDescs("sluice_l7_", "virtual server",
		"sluice_l7_request_duration_seconds", "Time to serve a request, by virtual server.", "vserver"),
		"sluice_l7_upstream_duration_seconds", "Time from sending a request upstream to the response header, by virtual server.", "vserver")
	locationDescs = withUpstream(newDescs("sluice_l7_location_", "location",
		"sluice_l7_location_request_duration_seconds", "Time to serve a request, by location.", "vserver", "location"),
		"sluice_l7_location_upstream_duration_seconds", "Time from sending a request upstream to the response header, by location.", "vserver", "location")
	serverDescs = func() descs {
		d := newDescs("sluice_l7_upstream_", "upstream server",
			"sluice_l7_upstream_response_duration_seconds", "Time from sending a request to an upstream server to its response header.", "upstream", "server")
		d.upstreamLatency = true
		return d
	}()
)

var (
	clientConnsDesc = prometheus.NewDesc("sluice_l7_client_connections",
		"Client connections open at the proxy, idle keep-alive ones and WebSockets included.", nil, nil)
	clientAcceptedDesc = prometheus.NewDesc("sluice_l7_client_connections_accepted_total",
		"Client connections the proxy accepted.", nil, nil)
)

// collector exports a Registry's counters at every scrape.
type collector struct{ r *Registry }

// Collector returns a Prometheus collector of the registry's counters. Its
// labels are names from the configuration, so Retain keeps them bounded.
func (r *Registry) Collector() prometheus.Collector { return collector{r} }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- clientConnsDesc
	ch <- clientAcceptedDesc
	for _, d := range []*descs{&vserverDescs, &locationDescs, &serverDescs} {
		ch <- d.requests
		ch <- d.responses
		ch <- d.bytes
		ch <- d.active
		ch <- d.latency
		if d.upstream != nil {
			ch <- d.upstream
		}
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(clientConnsDesc, prometheus.GaugeValue, float64(c.r.activeClients()))
	ch <- prometheus.MustNewConstMetric(clientAcceptedDesc, prometheus.CounterValue, float64(c.r.accepted.Load()))
	for name, cs := range *c.r.vservers.Load() {
		vserverDescs.collect(ch, cs, name)
	}
	for k, cs := range *c.r.locations.Load() {
		locationDescs.collect(ch, cs, k[0], k[1])
	}
	for k, cs := range *c.r.servers.Load() {
		serverDescs.collect(ch, cs, k[0], k[1])
	}
}

func (d *descs) collect(ch chan<- prometheus.Metric, c *Counters, labels ...string) {
	t := c.read()
	ch <- prometheus.MustNewConstMetric(d.requests, prometheus.CounterValue, float64(t.requests), labels...)
	for i, n := range t.classes {
		ch <- prometheus.MustNewConstMetric(d.responses, prometheus.CounterValue, float64(n), with(labels, classNames[i])...)
	}
	ch <- prometheus.MustNewConstMetric(d.bytes, prometheus.CounterValue, float64(t.bytesIn), with(labels, "in")...)
	ch <- prometheus.MustNewConstMetric(d.bytes, prometheus.CounterValue, float64(t.bytesOut), with(labels, "out")...)
	ch <- prometheus.MustNewConstMetric(d.active, prometheus.GaugeValue, float64(t.active), labels...)
	h := &t.latency
	if d.upstreamLatency {
		h = &t.upstream
	}
	ch <- histogram(d.latency, h, labels)
	if d.upstream != nil {
		ch <- histogram(d.upstream, &t.upstream, labels)
	}
}

func histogram(d *prometheus.Desc, h *histTotals, labels []string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(bounds))
	var cum uint64
	for i, le := range bounds {
		cum += h.counts[i]
		buckets[le] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.count, seconds(h.sumNS), buckets, labels...)
}

// with returns labels and one more, leaving labels as they are.
func with(labels []string, extra string) []string {
	return append(labels[:len(labels):len(labels)], extra)
}

var _ prometheus.Collector = collector{}
