package stats

import "time"

// Snapshot is the state of every Counters at one time, ready for JSON.
// Rates are left to the reader, who diffs two snapshots over their Time.
type Snapshot struct {
	Time        time.Time                    `json:"time"`
	Connections Connections                  `json:"connections"`
	VServers    map[string]Totals            `json:"vservers"`
	Locations   map[string]map[string]Totals `json:"locations"` // vserver → location
	Upstreams   map[string]Upstream          `json:"upstreams"`
}

// Connections are the proxy's client connections, as nginx's stub_status
// has them: open now (Active: idle keep-alive ones included, unlike a
// Totals' Active) and accepted since the proxy started.
type Connections struct {
	Active   int64  `json:"active"`
	Accepted uint64 `json:"accepted"`
}

// Upstream holds the totals of an upstream's servers by address.
type Upstream struct {
	Servers map[string]Totals `json:"servers"`
}

// Totals are one Counters' values.
type Totals struct {
	Requests  uint64    `json:"requests"`
	BytesIn   uint64    `json:"bytes_in"`
	BytesOut  uint64    `json:"bytes_out"`
	Active    int64     `json:"active"`
	Responses Responses `json:"responses"`
	// Latency is the whole request's duration (virtual servers and
	// locations), UpstreamLatency the time to the upstream's response
	// header; each is absent until it has an observation.
	Latency         *Histogram `json:"latency,omitempty"`
	UpstreamLatency *Histogram `json:"upstream_latency,omitempty"`
}

// Responses counts responses by status class; Other counts requests without
// a response (status 0) or with a status outside 100-599.
type Responses struct {
	Status1xx uint64 `json:"1xx"`
	Status2xx uint64 `json:"2xx"`
	Status3xx uint64 `json:"3xx"`
	Status4xx uint64 `json:"4xx"`
	Status5xx uint64 `json:"5xx"`
	Other     uint64 `json:"xxx"`
}

// Histogram is a latency distribution in seconds. Buckets are cumulative,
// like Prometheus's: each counts the observations at most LE; Count (the
// unbounded bucket) counts all. The quantiles are estimated from the buckets.
type Histogram struct {
	Buckets []Bucket `json:"buckets"`
	Count   uint64   `json:"count"`
	Sum     float64  `json:"sum"`
	P50     float64  `json:"p50"`
	P90     float64  `json:"p90"`
	P99     float64  `json:"p99"`
}

// Bucket is one bucket of a Histogram.
type Bucket struct {
	LE    float64 `json:"le"`
	Count uint64  `json:"count"`
}

// Quantile estimates the q-quantile (0 ≤ q ≤ 1) in seconds by linear
// interpolation inside the bucket that holds it, the first bucket starting
// at 0. A quantile beyond the last bound is that bound. It returns 0 for an
// empty histogram.
func (h *Histogram) Quantile(q float64) float64 {
	if h == nil || h.Count == 0 {
		return 0
	}
	rank := q * float64(h.Count)
	var lo float64
	var below uint64
	for _, b := range h.Buckets {
		if b.Count > below && float64(b.Count) >= rank {
			return lo + (b.LE-lo)*(rank-float64(below))/float64(b.Count-below)
		}
		lo, below = b.LE, b.Count
	}
	return lo
}

// Snapshot reads every Counters.
func (r *Registry) Snapshot() Snapshot {
	s := Snapshot{
		Time:        time.Now(),
		Connections: Connections{Active: r.activeClients(), Accepted: r.accepted.Load()},
		VServers:    map[string]Totals{},
		Locations:   map[string]map[string]Totals{},
		Upstreams:   map[string]Upstream{},
	}
	for name, c := range *r.vservers.Load() {
		s.VServers[name] = c.totals()
	}
	for k, c := range *r.locations.Load() {
		m := s.Locations[k[0]]
		if m == nil {
			m = map[string]Totals{}
			s.Locations[k[0]] = m
		}
		m[k[1]] = c.totals()
	}
	for k, c := range *r.servers.Load() {
		u, ok := s.Upstreams[k[0]]
		if !ok {
			u = Upstream{Servers: map[string]Totals{}}
			s.Upstreams[k[0]] = u
		}
		u.Servers[k[1]] = c.totals()
	}
	return s
}

// totals reads c for a Snapshot.
func (c *Counters) totals() Totals {
	t := c.read()
	return Totals{
		Requests: t.requests, BytesIn: t.bytesIn, BytesOut: t.bytesOut, Active: t.active,
		Responses: Responses{
			Status1xx: t.classes[class1xx], Status2xx: t.classes[class2xx], Status3xx: t.classes[class3xx],
			Status4xx: t.classes[class4xx], Status5xx: t.classes[class5xx], Other: t.classes[classOther],
		},
		Latency:         t.latency.histogram(),
		UpstreamLatency: t.upstream.histogram(),
	}
}

// histogram returns h for a Snapshot, or nil when it is empty.
func (h *histTotals) histogram() *Histogram {
	if h.count == 0 {
		return nil
	}
	out := &Histogram{Buckets: make([]Bucket, len(bounds)), Count: h.count, Sum: seconds(h.sumNS)}
	var cum uint64
	for i, le := range bounds {
		cum += h.counts[i]
		out.Buckets[i] = Bucket{LE: le, Count: cum}
	}
	out.P50, out.P90, out.P99 = out.Quantile(0.5), out.Quantile(0.9), out.Quantile(0.99)
	return out
}

func seconds(ns uint64) float64 { return float64(ns) / 1e9 }
