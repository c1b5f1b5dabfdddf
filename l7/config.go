package l7

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sluicelb/sluice/l7/accesslog"
	"github.com/sluicelb/sluice/l7/upstream"
)

// ErrInvalidConfig is wrapped by every validation error; the message names
// the object and the field.
var ErrInvalidConfig = errors.New("invalid l7 config")

// Config is the whole desired state of the proxy. The daemon builds it from
// its store and hands it to Proxy.Apply after every change, so one change is
// one atomic swap.
type Config struct {
	// Endpoints are the L7 services: name → VIP:port the intercept steers here.
	Endpoints map[string]netip.AddrPort `json:"endpoints"`
	VServers  []VServer                 `json:"vservers"`
	Upstreams []upstream.Config         `json:"upstreams"`
	Certs     []Cert                    `json:"certs"`
	AccessLog accesslog.Config          `json:"access_log"`
}

// VServer is a virtual server: the host names it answers for on an L7
// service, and its locations. The vserver with no host names is the
// service's default; without one, the first by name is.
type VServer struct {
	Name      string     `json:"name"`
	Service   string     `json:"service"`
	Hosts     []string   `json:"hosts,omitempty"` // example.com, *.example.com
	TLS       bool       `json:"tls,omitempty"`   // terminate TLS (and TLCP) on the service's port
	Locations []Location `json:"locations"`
}

// Match kinds of a location.
const (
	MatchExact  = "exact"
	MatchPrefix = "prefix"
	MatchRegex  = "regex"
)

// Location sends the requests whose path matches to an upstream. An exact
// match wins, then the first regex that matches (in order), then the
// longest prefix.
type Location struct {
	Name     string `json:"name"`
	Match    string `json:"match,omitempty"` // exact | prefix (default) | regex
	Path     string `json:"path"`
	Upstream string `json:"upstream"`
	// Timeouts override the upstream's (0: the upstream's).
	ConnectTimeout upstream.Duration `json:"connect_timeout,omitempty"`
	ReadTimeout    upstream.Duration `json:"read_timeout,omitempty"`
	// Tries is how many servers one request may try (0: 3). Connection
	// errors always move on; upstream errors only for idempotent requests
	// unless RetryNonIdempotent.
	Tries              int  `json:"tries,omitempty"`
	RetryNonIdempotent bool `json:"retry_non_idempotent,omitempty"`
}

// Cert kinds.
const (
	CertTLS  = "tls"
	CertTLCP = "tlcp"
)

// Cert is a certificate and key in PEM, or for TLCP the signing and the
// encryption pair. The names it serves come from the certificate.
type Cert struct {
	Name     string `json:"name"`
	Kind     string `json:"kind,omitempty"` // tls (default) | tlcp
	Default  bool   `json:"default,omitempty"`
	CertPEM  string `json:"cert,omitempty"`
	KeyPEM   string `json:"key,omitempty"`
	SignCert string `json:"sign_cert,omitempty"`
	SignKey  string `json:"sign_key,omitempty"`
	EncCert  string `json:"enc_cert,omitempty"`
	EncKey   string `json:"enc_key,omitempty"`
}

// Limits protect the proxy from slow and greedy clients; they are fixed
// when the proxy starts (Options).
type Limits struct {
	ReadHeaderTimeout upstream.Duration `json:"read_header_timeout,omitempty"` // default 10s: a slowloris client is cut off
	IdleTimeout       upstream.Duration `json:"idle_timeout,omitempty"`        // keep-alive, default 75s
	MaxHeaderBytes    int               `json:"max_header_bytes,omitempty"`    // default 64 KiB
}

func (l Limits) withDefaults() Limits {
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = upstream.Duration(10 * time.Second)
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = upstream.Duration(75 * time.Second)
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 64 << 10
	}
	return l
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)

func invalid(what, name, field, format string, args ...any) error {
	return fmt.Errorf("%w: %s %q: %s: %s", ErrInvalidConfig, what, name, field, fmt.Sprintf(format, args...))
}

// ValidName checks an object name: 1-63 of A-Z a-z 0-9 . _ -.
func ValidName(what, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %s name %q: want 1-63 of A-Z a-z 0-9 . _ -", ErrInvalidConfig, what, name)
	}
	return nil
}

// Validate checks one virtual server on its own (references are checked by
// Config.Validate).
func (v *VServer) Validate() error {
	if err := ValidName("vserver", v.Name); err != nil {
		return err
	}
	if v.Service == "" {
		return invalid("vserver", v.Name, "service", "required: the l7 service it listens on")
	}
	for _, h := range v.Hosts {
		if err := validHost(h); err != nil {
			return invalid("vserver", v.Name, "hosts", "%v", err)
		}
	}
	seen := map[string]bool{}
	for i := range v.Locations {
		l := &v.Locations[i]
		if err := l.Validate(); err != nil {
			return fmt.Errorf("vserver %q: %w", v.Name, err)
		}
		if seen[l.Name] {
			return invalid("vserver", v.Name, "locations", "location %q twice", l.Name)
		}
		seen[l.Name] = true
	}
	return nil
}

func validHost(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if name == "" || strings.ContainsAny(name, "*/: ") || len(h) > 253 {
		return fmt.Errorf("%q: want a host name or *.domain", h)
	}
	return nil
}

// Validate checks a location and fills its match kind.
func (l *Location) Validate() error {
	if err := ValidName("location", l.Name); err != nil {
		return err
	}
	if l.Match == "" {
		l.Match = MatchPrefix
	}
	switch l.Match {
	case MatchExact, MatchPrefix:
		if !strings.HasPrefix(l.Path, "/") {
			return invalid("location", l.Name, "path", "%q: must start with /", l.Path)
		}
	case MatchRegex:
		if _, err := regexp.Compile(l.Path); err != nil {
			return invalid("location", l.Name, "path", "%v", err)
		}
	default:
		return invalid("location", l.Name, "match", "%q: want exact, prefix or regex", l.Match)
	}
	if l.Upstream == "" {
		return invalid("location", l.Name, "upstream", "required")
	}
	if l.Tries < 0 || l.ConnectTimeout < 0 || l.ReadTimeout < 0 {
		return invalid("location", l.Name, "tries/timeouts", "must not be negative")
	}
	return nil
}

// Validate checks the certificate's kind and that its PEM parses.
func (c *Cert) Validate() error {
	if err := ValidName("cert", c.Name); err != nil {
		return err
	}
	if c.Kind == "" {
		c.Kind = CertTLS
	}
	_, err := loadCert(*c)
	return err
}

// Validate checks the whole config: each object (certificates only by
// name: compile parses them), and that every reference
// resolves (a location's upstream, a vserver's service) and that the
// vservers sharing a service agree on TLS.
func (c *Config) Validate() error {
	ups := map[string]bool{}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		if err := u.Validate(); err != nil {
			return fmt.Errorf("%w: upstream %q: %w", ErrInvalidConfig, u.Name, err)
		}
		ups[u.Name] = true
	}
	tlsOf := map[string]bool{}
	names := map[string]bool{}
	for i := range c.VServers {
		v := &c.VServers[i]
		if err := v.Validate(); err != nil {
			return err
		}
		if names[v.Name] {
			return invalid("vserver", v.Name, "name", "defined twice")
		}
		names[v.Name] = true
		if _, ok := c.Endpoints[v.Service]; !ok {
			return invalid("vserver", v.Name, "service", "no l7 service %q", v.Service)
		}
		if t, seen := tlsOf[v.Service]; seen && t != v.TLS {
			return invalid("vserver", v.Name, "tls", "the vservers of service %q disagree on tls", v.Service)
		}
		tlsOf[v.Service] = v.TLS
		for _, l := range v.Locations {
			if !ups[l.Upstream] {
				return invalid("vserver", v.Name, "locations", "location %q: no upstream %q", l.Name, l.Upstream)
			}
		}
	}
	for _, cert := range c.Certs {
		// The PEM is parsed once, when the config is compiled; a bad one
		// fails Apply there, before anything changes.
		if err := ValidName("cert", cert.Name); err != nil {
			return err
		}
	}
	if err := c.AccessLog.Validate(); err != nil {
		return fmt.Errorf("%w: access log: %w", ErrInvalidConfig, err)
	}
	return nil
}

// UpstreamUsers returns the locations ("vserver/location") that send to an
// upstream, so the API can refuse to delete one still in use.
func (c *Config) UpstreamUsers(name string) []string {
	var out []string
	for _, v := range c.VServers {
		for _, l := range v.Locations {
			if l.Upstream == name {
				out = append(out, v.Name+"/"+l.Name)
			}
		}
	}
	slices.Sort(out)
	return out
}
