package l7

import (
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sluicelb/sluice/l7/stats"
	"github.com/sluicelb/sluice/l7/upstream"
)

// table is a compiled Config: what a request needs, resolved once per
// change so the hot path does map lookups and nothing else. It is immutable.
type table struct {
	endpoints map[netip.AddrPort]*endpoint
	tlsCerts  *certSet
	tlcpCerts *certSet
}

// endpoint is one L7 service's VIP:port with its virtual servers.
type endpoint struct {
	service string
	tls     bool
	exact   map[string]*vserver
	wild    []wildHost // longest suffix first
	def     *vserver
}

type wildHost struct {
	suffix string // ".example.com"
	vs     *vserver
}

type vserver struct {
	name   string
	stats  *stats.Counters
	exact  map[string]*route
	regex  []*route
	prefix []*route // longest path first
}

// route is one location resolved: its upstream pool and counters.
type route struct {
	vs             *vserver
	name           string
	path           string
	re             *regexp.Regexp
	upstream       string
	pool           *upstream.Pool
	tr             *upstreamTransport
	stats          *stats.Counters
	tries          int
	connectTimeout time.Duration
	readTimeout    time.Duration // the location's, else the upstream's
	retryAny       bool
}

const defaultTries = 3

// compile builds the table of cfg over the proxy's pools and counters.
func compile(cfg *Config, pools map[string]*upstream.Pool, trs map[string]*upstreamTransport, reg *stats.Registry) (*table, error) {
	t := &table{endpoints: map[netip.AddrPort]*endpoint{}}
	var tlsCerts, tlcpCerts []*loadedCert
	for _, c := range cfg.Certs {
		lc, err := loadCert(c)
		if err != nil {
			return nil, err
		}
		if lc.tls != nil {
			tlsCerts = append(tlsCerts, lc)
		} else {
			tlcpCerts = append(tlcpCerts, lc)
		}
	}
	t.tlsCerts, t.tlcpCerts = newCertSet(tlsCerts), newCertSet(tlcpCerts)

	vss := slices.Clone(cfg.VServers)
	slices.SortFunc(vss, func(a, b VServer) int { return strings.Compare(a.Name, b.Name) })
	for _, v := range vss {
		ap := cfg.Endpoints[v.Service]
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		ep := t.endpoints[ap]
		if ep == nil {
			ep = &endpoint{service: v.Service, tls: v.TLS, exact: map[string]*vserver{}}
			t.endpoints[ap] = ep
		}
		vs := &vserver{name: v.Name, stats: reg.VServer(v.Name), exact: map[string]*route{}}
		for _, l := range v.Locations {
			r := &route{vs: vs, name: l.Name, path: l.Path, upstream: l.Upstream, pool: pools[l.Upstream], tr: trs[l.Upstream],
				stats: reg.Location(v.Name, l.Name), tries: l.Tries, retryAny: l.RetryNonIdempotent,
				connectTimeout: time.Duration(l.ConnectTimeout), readTimeout: time.Duration(l.ReadTimeout)}
			if r.tries == 0 {
				r.tries = defaultTries
			}
			if r.readTimeout <= 0 && r.tr != nil {
				r.readTimeout = r.tr.readTimeout // the upstream's
			}
			switch l.Match {
			case MatchExact:
				vs.exact[l.Path] = r
			case MatchRegex:
				r.re = regexp.MustCompile(l.Path) // validated
				vs.regex = append(vs.regex, r)
			default:
				vs.prefix = append(vs.prefix, r)
			}
		}
		slices.SortStableFunc(vs.prefix, func(a, b *route) int { return len(b.path) - len(a.path) })
		if len(v.Hosts) == 0 {
			ep.def = vs
		}
		for _, h := range v.Hosts {
			h = strings.ToLower(h)
			if strings.HasPrefix(h, "*.") {
				ep.wild = append(ep.wild, wildHost{suffix: h[1:], vs: vs})
			} else if _, taken := ep.exact[h]; !taken {
				ep.exact[h] = vs
			}
		}
		if ep.def == nil {
			ep.def = vs // the first by name until one without hosts comes
		}
	}
	for _, ep := range t.endpoints {
		slices.SortStableFunc(ep.wild, func(a, b wildHost) int { return len(b.suffix) - len(a.suffix) })
	}
	return t, nil
}

// vserverFor picks the virtual server for a Host header: exact name, then
// the longest wildcard, then the default.
func (ep *endpoint) vserverFor(host string) *vserver {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if vs := ep.exact[host]; vs != nil {
		return vs
	}
	for _, w := range ep.wild {
		if strings.HasSuffix(host, w.suffix) {
			return w.vs
		}
	}
	return ep.def
}

// routeFor picks the location for a path: exact, then the first matching
// regex, then the longest prefix; nil when none matches.
func (vs *vserver) routeFor(path string) *route {
	if r := vs.exact[path]; r != nil {
		return r
	}
	for _, r := range vs.regex {
		if r.re.MatchString(path) {
			return r
		}
	}
	for _, r := range vs.prefix {
		if strings.HasPrefix(path, r.path) {
			return r
		}
	}
	return nil
}
