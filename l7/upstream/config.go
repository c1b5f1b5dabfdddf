// Package upstream holds the upstream pools of the L7 proxy, in the shape
// nginx and OpenNJet operators know: servers with weights, max_fails and
// fail_timeout (passive health), backup and down flags, and a balancer per
// pool (smooth weighted round-robin, least connections, consistent hash or
// two random choices). A Pool is safe for concurrent use; Pick, the hot
// path, reads an immutable snapshot that Update swaps atomically.
package upstream

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Balancer names, as the operator writes them in Config.Balancer.
const (
	BalancerRoundRobin = "round_robin"
	BalancerLeastConn  = "least_conn"
	BalancerHash       = "hash"
	BalancerRandom     = "random"
)

// Hash keys of the hash balancer (Config.HashKey); the header and cookie
// forms are a prefix followed by the name: "header:X-User", "cookie:sid".
const (
	HashClientIP     = "client_ip"
	HashURI          = "uri"
	HashHeaderPrefix = "header:"
	HashCookiePrefix = "cookie:"
)

// TLS modes of TLSConfig.Mode.
const (
	ModeTLS  = "tls"
	ModeTLCP = "tlcp"
)

// Defaults and limits that Normalize and Validate apply.
const (
	DefaultWeight         = 1
	MaxWeight             = 1000000
	DefaultMaxFails       = 1
	DefaultFailTimeout    = 10 * time.Second
	DefaultKeepAlive      = 32
	MaxKeepAlive          = 100000
	DefaultConnectTimeout = 5 * time.Second
	DefaultReadTimeout    = 60 * time.Second
	DefaultWriteTimeout   = 60 * time.Second

	// MaxFailsDisabled in ServerConfig.MaxFails turns passive health off
	// for the server: failures never take it out. (0 means "unset" in JSON
	// and becomes DefaultMaxFails, so nginx's max_fails=0 is written -1.)
	MaxFailsDisabled = -1
)

// ErrInvalid is matched (errors.Is) by every validation error; the error
// itself is a *ConfigError naming the field.
var ErrInvalid = errors.New("invalid upstream config")

// ErrNoServer is returned by UpdateServer and RemoveServer for an id the
// pool does not have.
var ErrNoServer = errors.New("no such upstream server")

// ConfigError is a validation error: the field (as in the JSON, with the
// server's index and address for server fields) and what is wrong with it.
// It matches ErrInvalid.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Msg }

// Is reports whether target is ErrInvalid.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Duration is a time.Duration that is a string ("10s", "250ms") in JSON.
// It also reads a JSON number as seconds.
type Duration time.Duration

// String is the duration as time.Duration prints it.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string: "10s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "10s", or a number of seconds; it returns an error for
// anything else.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		f, nerr := strconv.ParseFloat(string(b), 64)
		if nerr != nil {
			return fmt.Errorf("duration %s: want a string like \"10s\" or a number of seconds", b)
		}
		*d = Duration(f * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// ServerConfig is one upstream server as the operator writes it (JSON in
// the API). Zero values mean the defaults (see Normalize).
type ServerConfig struct {
	// ID identifies the server across updates; the pool assigns one when 0.
	ID int `json:"id,omitempty"`
	// Addr is host:port; a host name is resolved by the proxy's dialer.
	Addr string `json:"addr"`
	// Weight is the server's share, 1..1000000 (default 1).
	Weight int `json:"weight,omitempty"`
	// MaxFails failures within FailTimeout take the server out for
	// FailTimeout (default 1; MaxFailsDisabled, -1, turns this off).
	MaxFails int `json:"max_fails,omitempty"`
	// FailTimeout is both the window that counts failures and how long the
	// server then stays out (default 10s).
	FailTimeout Duration `json:"fail_timeout,omitempty"`
	// Backup servers take requests only when no primary is available.
	Backup bool `json:"backup,omitempty"`
	// Down servers take no requests.
	Down bool `json:"down,omitempty"`
}

// ServerPatch changes one server (PATCH of the dynamic upstream API, in the
// shape nginx's and OpenNJet's take): nil fields stay as they are.
type ServerPatch struct {
	Addr        *string   `json:"addr,omitempty"`
	Weight      *int      `json:"weight,omitempty"`
	MaxFails    *int      `json:"max_fails,omitempty"`
	FailTimeout *Duration `json:"fail_timeout,omitempty"`
	Backup      *bool     `json:"backup,omitempty"`
	Down        *bool     `json:"down,omitempty"`
}

// Apply changes the fields of sc that p names.
func (p ServerPatch) Apply(sc *ServerConfig) {
	if p.Addr != nil {
		sc.Addr = *p.Addr
	}
	if p.Weight != nil {
		sc.Weight = *p.Weight
	}
	if p.MaxFails != nil {
		sc.MaxFails = *p.MaxFails
	}
	if p.FailTimeout != nil {
		sc.FailTimeout = *p.FailTimeout
	}
	if p.Backup != nil {
		sc.Backup = *p.Backup
	}
	if p.Down != nil {
		sc.Down = *p.Down
	}
}

// TLSConfig is how the proxy speaks TLS or TLCP to the servers of a pool.
// This package only carries and validates it; the proxy builds the dialer.
// Certificates and keys are PEM.
type TLSConfig struct {
	Mode       string `json:"mode,omitempty"` // tls (default) | tlcp
	ServerName string `json:"server_name,omitempty"`
	CA         string `json:"ca,omitempty"`
	SkipVerify bool   `json:"skip_verify,omitempty"`
	Cert       string `json:"cert,omitempty"` // client certificate; for TLCP the signing one
	Key        string `json:"key,omitempty"`
	EncCert    string `json:"enc_cert,omitempty"` // TLCP only: the encryption pair
	EncKey     string `json:"enc_key,omitempty"`
}

// Config is a pool: its servers, balancer and connection settings.
type Config struct {
	Name string `json:"name"`
	// Balancer is round_robin (default), least_conn, hash or random.
	Balancer string `json:"balancer,omitempty"`
	// HashKey is what the hash balancer hashes: client_ip (default),
	// uri, header:NAME or cookie:NAME. Only for balancer hash.
	HashKey string         `json:"hash_key,omitempty"`
	Servers []ServerConfig `json:"servers"`
	// KeepAlive is the number of idle connections kept per server (default 32).
	KeepAlive      int        `json:"keepalive,omitempty"`
	ConnectTimeout Duration   `json:"connect_timeout,omitempty"` // default 5s
	ReadTimeout    Duration   `json:"read_timeout,omitempty"`    // default 60s
	WriteTimeout   Duration   `json:"write_timeout,omitempty"`   // default 60s
	TLS            *TLSConfig `json:"tls,omitempty"`
}

// Clone returns a deep copy of c: its Servers and TLS are not shared.
func (c Config) Clone() Config {
	out := c
	if c.Servers != nil {
		out.Servers = append([]ServerConfig(nil), c.Servers...)
	}
	if c.TLS != nil {
		t := *c.TLS
		out.TLS = &t
	}
	return out
}

// Normalize fills the defaults of the zero fields of c and of its servers
// in place: the balancer, the hash key of a hash pool, weights, max_fails,
// fail_timeout, keepalive, timeouts and the TLS mode. It leaves wrong values
// for Validate to report and does not assign IDs (the pool does). It writes
// into c.Servers and *c.TLS: Clone first if they are shared.
func (c *Config) Normalize() {
	if c.Balancer == "" {
		c.Balancer = BalancerRoundRobin
	}
	if c.Balancer == BalancerHash && c.HashKey == "" {
		c.HashKey = HashClientIP
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = Duration(DefaultConnectTimeout)
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = Duration(DefaultReadTimeout)
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = Duration(DefaultWriteTimeout)
	}
	if c.TLS != nil && c.TLS.Mode == "" {
		c.TLS.Mode = ModeTLS
	}
	for i := range c.Servers {
		c.Servers[i].normalize()
	}
}

func (s *ServerConfig) normalize() {
	if s.Weight == 0 {
		s.Weight = DefaultWeight
	}
	if s.MaxFails == 0 {
		s.MaxFails = DefaultMaxFails
	}
	if s.FailTimeout == 0 {
		s.FailTimeout = Duration(DefaultFailTimeout)
	}
}

// Validate checks c as it would be after Normalize, without changing c:
// zero values stand for the defaults. It returns a *ConfigError (matching
// ErrInvalid) naming the first bad field: the name, an unknown balancer, a
// hash key that is malformed or set for another balancer, a server's
// address, weight out of 1..1000000, max_fails below -1, a negative
// fail_timeout, duplicate addresses or ids, negative keepalive or timeouts,
// or a TLS block with an unknown mode, a CA without a certificate, or a
// certificate without its key.
func (c *Config) Validate() error {
	n := c.Clone()
	n.Normalize()
	return n.validate()
}

func (c *Config) validate() error {
	if err := validName(c.Name); err != nil {
		return err
	}
	switch c.Balancer {
	case BalancerRoundRobin, BalancerLeastConn, BalancerRandom:
		if c.HashKey != "" {
			return invalid("hash_key", "%q: only for balancer hash, not %s", c.HashKey, c.Balancer)
		}
	case BalancerHash:
		if _, _, err := parseHashKey(c.HashKey); err != nil {
			return err
		}
	default:
		return invalid("balancer", "%q: want round_robin, least_conn, hash or random", c.Balancer)
	}
	if c.KeepAlive < 0 || c.KeepAlive > MaxKeepAlive {
		return invalid("keepalive", "%d: want 0..%d", c.KeepAlive, MaxKeepAlive)
	}
	for _, d := range []struct {
		field string
		v     Duration
	}{{"connect_timeout", c.ConnectTimeout}, {"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout}} {
		if d.v < 0 {
			return invalid(d.field, "%v: must not be negative", d.v)
		}
	}
	if err := c.TLS.validate(); err != nil {
		return err
	}
	addrs := make(map[string]int, len(c.Servers))
	ids := make(map[int]int, len(c.Servers))
	for i := range c.Servers {
		s := &c.Servers[i]
		field := fmt.Sprintf("servers[%d]", i)
		if s.Addr != "" {
			field = fmt.Sprintf("servers[%d] (%s)", i, s.Addr)
		}
		if err := s.validate(field); err != nil {
			return err
		}
		key := strings.ToLower(s.Addr)
		if j, dup := addrs[key]; dup {
			return invalid(field+".addr", "%q: also servers[%d]", s.Addr, j)
		}
		addrs[key] = i
		if s.ID != 0 {
			if j, dup := ids[s.ID]; dup {
				return invalid(field+".id", "%d: also servers[%d]", s.ID, j)
			}
			ids[s.ID] = i
		}
	}
	return nil
}

// validName accepts 1-63 of A-Z a-z 0-9 . _ - (the rule of every object
// name of the proxy).
func validName(name string) error {
	ok := len(name) > 0 && len(name) <= 63
	for i := 0; ok && i < len(name); i++ {
		ch := name[i]
		ok = ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-'
	}
	if !ok {
		return invalid("name", "%q: want 1-63 of A-Z a-z 0-9 . _ -", name)
	}
	return nil
}

func (s *ServerConfig) validate(field string) error {
	if s.ID < 0 {
		return invalid(field+".id", "%d: must not be negative", s.ID)
	}
	if err := validAddr(s.Addr); err != nil {
		return invalid(field+".addr", "%v", err)
	}
	if s.Weight < 1 || s.Weight > MaxWeight {
		return invalid(field+".weight", "%d: want 1..%d", s.Weight, MaxWeight)
	}
	if s.MaxFails < MaxFailsDisabled {
		return invalid(field+".max_fails", "%d: want -1 (off) or a count", s.MaxFails)
	}
	if s.FailTimeout < 0 {
		return invalid(field+".fail_timeout", "%v: must not be negative", s.FailTimeout)
	}
	return nil
}

// validAddr accepts host:port with an IP address or a DNS name and a port
// in 1..65535.
func validAddr(addr string) error {
	if addr == "" {
		return errors.New("required (host:port)")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: port %q: want 1..65535", addr, port)
	}
	if host == "" {
		return fmt.Errorf("%q: no host", addr)
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if strings.Contains(addr, "[") {
		return fmt.Errorf("%q: %q is not an IPv6 address", addr, host)
	}
	if !validHostname(host) {
		return fmt.Errorf("%q: %q is neither an IP address nor a host name", addr, host)
	}
	return nil
}

func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
				return false
			}
		}
	}
	return true
}

// Kinds of hash key.
const (
	keyNone = iota
	keyClientIP
	keyURI
	keyHeader
	keyCookie
)

// parseHashKey splits a hash key into its kind and name (the header name
// canonicalized as net/http stores it).
func parseHashKey(k string) (kind int, name string, err error) {
	switch {
	case k == HashClientIP:
		return keyClientIP, "", nil
	case k == HashURI:
		return keyURI, "", nil
	case strings.HasPrefix(k, HashHeaderPrefix):
		name = strings.TrimPrefix(k, HashHeaderPrefix)
		if !isToken(name) {
			return 0, "", invalid("hash_key", "%q: header name %q is not a token", k, name)
		}
		return keyHeader, canonicalHeader(name), nil
	case strings.HasPrefix(k, HashCookiePrefix):
		name = strings.TrimPrefix(k, HashCookiePrefix)
		if !isToken(name) {
			return 0, "", invalid("hash_key", "%q: cookie name %q is not a token", k, name)
		}
		return keyCookie, name, nil
	}
	return 0, "", invalid("hash_key", "%q: want client_ip, uri, header:NAME or cookie:NAME", k)
}

// isToken reports whether s is an HTTP token (RFC 9110), as header and
// cookie names are.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(ch)) {
			return false
		}
	}
	return true
}

func (t *TLSConfig) validate() error {
	if t == nil {
		return nil
	}
	switch t.Mode {
	case ModeTLS, ModeTLCP:
	default:
		return invalid("tls.mode", "%q: want tls or tlcp", t.Mode)
	}
	if strings.ContainsAny(t.ServerName, " /:") {
		return invalid("tls.server_name", "%q: want a host name", t.ServerName)
	}
	if t.CA != "" && !hasPEM(t.CA, "CERTIFICATE") {
		return invalid("tls.ca", "no CERTIFICATE block in the PEM")
	}
	if err := validPair("tls.cert", "tls.key", t.Cert, t.Key); err != nil {
		return err
	}
	if t.Mode == ModeTLS && (t.EncCert != "" || t.EncKey != "") {
		return invalid("tls.enc_cert", "only for mode tlcp")
	}
	if t.Mode == ModeTLCP {
		if err := validPair("tls.enc_cert", "tls.enc_key", t.EncCert, t.EncKey); err != nil {
			return err
		}
		if (t.Cert == "") != (t.EncCert == "") {
			return invalid("tls.enc_cert", "tlcp client authentication needs both the signing (cert, key) and the encryption (enc_cert, enc_key) pairs")
		}
	}
	return nil
}

// validPair checks that a certificate and its key come together and are
// PEM of the right kind; the proxy parses them.
func validPair(certField, keyField, cert, key string) error {
	switch {
	case cert == "" && key == "":
		return nil
	case cert == "":
		return invalid(certField, "required with %s", keyField)
	case key == "":
		return invalid(keyField, "required with %s", certField)
	case !hasPEM(cert, "CERTIFICATE"):
		return invalid(certField, "no CERTIFICATE block in the PEM")
	case !hasPEM(key, "PRIVATE KEY"):
		return invalid(keyField, "no PRIVATE KEY block in the PEM")
	}
	return nil
}

// hasPEM reports whether s holds a PEM block whose type ends in suffix
// ("PRIVATE KEY" matches EC, RSA and PKCS#8 keys).
func hasPEM(s, suffix string) bool {
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return false
		}
		if strings.HasSuffix(b.Type, suffix) {
			return true
		}
	}
}
