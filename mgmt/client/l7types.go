package client

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/sluicelb/sluice/l7/stats"
)

// The types below mirror the L7 proxy's configuration (l7.VServer,
// l7.Location, l7.Cert, upstream.Config, accesslog.Config) and the views of
// the API (mgmt) field for field in their JSON; a test of cmd/sluice, which
// links both, keeps them in step.

// Duration is a time.Duration that reads and writes JSON as "10s", like
// upstream.Duration; it also reads a number of seconds.
type Duration time.Duration

// String is the duration as time.Duration prints it.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string: "10s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "10s", or a number of seconds.
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

// VServer is a virtual server: the host names it answers for on an L7
// service, and its locations (l7.VServer).
type VServer struct {
	Name      string     `json:"name"`
	Service   string     `json:"service"`
	Hosts     []string   `json:"hosts,omitempty"`
	TLS       bool       `json:"tls,omitempty"`
	Locations []Location `json:"locations"`
}

// Location sends the requests whose path matches to an upstream (l7.Location).
type Location struct {
	Name               string   `json:"name"`
	Match              string   `json:"match,omitempty"` // exact | prefix (default) | regex
	Path               string   `json:"path"`
	Upstream           string   `json:"upstream"`
	ConnectTimeout     Duration `json:"connect_timeout,omitempty"`
	ReadTimeout        Duration `json:"read_timeout,omitempty"`
	Tries              int      `json:"tries,omitempty"`
	RetryNonIdempotent bool     `json:"retry_non_idempotent,omitempty"`
}

// VServerView is a virtual server as the daemon reports it.
type VServerView struct {
	VServer
	Version uint64 `json:"version"`
}

// Upstream is a pool of servers and how to reach them (upstream.Config).
type Upstream struct {
	Name           string       `json:"name"`
	Balancer       string       `json:"balancer,omitempty"` // round_robin (default) | least_conn | hash | random
	HashKey        string       `json:"hash_key,omitempty"` // client_ip | uri | header:NAME | cookie:NAME
	Servers        []Server     `json:"servers"`
	KeepAlive      int          `json:"keepalive,omitempty"`
	ConnectTimeout Duration     `json:"connect_timeout,omitempty"`
	ReadTimeout    Duration     `json:"read_timeout,omitempty"`
	WriteTimeout   Duration     `json:"write_timeout,omitempty"`
	TLS            *UpstreamTLS `json:"tls,omitempty"`
}

// UpstreamTLS is how the proxy speaks TLS or TLCP to the servers of an
// upstream (upstream.TLSConfig); certificates and keys are PEM.
type UpstreamTLS struct {
	Mode       string `json:"mode,omitempty"` // tls (default) | tlcp
	ServerName string `json:"server_name,omitempty"`
	CA         string `json:"ca,omitempty"`
	SkipVerify bool   `json:"skip_verify,omitempty"`
	Cert       string `json:"cert,omitempty"` // the client certificate; for TLCP the signing one
	Key        string `json:"key,omitempty"`
	EncCert    string `json:"enc_cert,omitempty"` // TLCP: the encryption pair
	EncKey     string `json:"enc_key,omitempty"`
}

// Server is one server of an upstream (upstream.ServerConfig). An ID of 0
// asks the daemon to assign one.
type Server struct {
	ID          int      `json:"id,omitempty"`
	Addr        string   `json:"addr"`
	Weight      int      `json:"weight,omitempty"`
	MaxFails    int      `json:"max_fails,omitempty"`
	FailTimeout Duration `json:"fail_timeout,omitempty"`
	Backup      bool     `json:"backup,omitempty"`
	Down        bool     `json:"down,omitempty"`
}

// ServerView is a server with its live state: requests in flight and
// whether passive health checks let it take requests.
type ServerView struct {
	Server
	Active    int64 `json:"active"`
	Available bool  `json:"available"`
}

// UpstreamView is an upstream with its servers' live state.
type UpstreamView struct {
	Upstream
	Servers []ServerView `json:"servers"`
	Version uint64       `json:"version"`
}

// ServerPatch changes one server of an upstream; nil fields stay as they are.
type ServerPatch struct {
	Addr        *string   `json:"addr,omitempty"`
	Weight      *int      `json:"weight,omitempty"`
	MaxFails    *int      `json:"max_fails,omitempty"`
	FailTimeout *Duration `json:"fail_timeout,omitempty"`
	Backup      *bool     `json:"backup,omitempty"`
	Down        *bool     `json:"down,omitempty"`
}

// Cert is a certificate and its key in PEM, or for TLCP the signing and the
// encryption pairs (l7.Cert).
type Cert struct {
	Name     string `json:"name"`
	Kind     string `json:"kind,omitempty"` // tls (default) | tlcp
	Default  bool   `json:"default,omitempty"`
	Cert     string `json:"cert,omitempty"`
	Key      string `json:"key,omitempty"`
	SignCert string `json:"sign_cert,omitempty"`
	SignKey  string `json:"sign_key,omitempty"`
	EncCert  string `json:"enc_cert,omitempty"`
	EncKey   string `json:"enc_key,omitempty"`
}

// CertView is a certificate as the daemon reports it: never its keys.
type CertView struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Default  bool   `json:"default,omitempty"`
	Cert     string `json:"cert,omitempty"`
	SignCert string `json:"sign_cert,omitempty"`
	EncCert  string `json:"enc_cert,omitempty"`
	Version  uint64 `json:"version"`
}

// AccessLog is the access log's configuration (accesslog.Config).
type AccessLog struct {
	Enabled  bool   `json:"enabled"`
	Format   string `json:"format,omitempty"`   // combined (default) | json | template
	Template string `json:"template,omitempty"` // with format template
	Path     string `json:"path,omitempty"`     // a file, or
	Syslog   string `json:"syslog,omitempty"`   // udp://host:port, tcp://host:port, unix:///dev/log or unixgram:///dev/log
	Buffer   int    `json:"buffer,omitempty"`   // entries that wait for the writer before new ones are dropped (0: 8192)
}

// AccessLogStats are the logger's counters (accesslog.Stats).
type AccessLogStats struct {
	Written uint64 `json:"written"` // entries handed to the file or the syslog server
	Dropped uint64 `json:"dropped"` // entries not queued because the queue was full
	Errors  uint64 `json:"errors"`  // entries lost to write errors or an unreachable syslog server
}

// AccessLogStatus is GET /v1/accesslog: the configuration and, from a
// running proxy, the logger's counters.
type AccessLogStatus struct {
	Config AccessLog       `json:"config"`
	Stats  *AccessLogStats `json:"stats,omitempty"`
}

// L7Stats is GET /v1/stats/l7: the proxy's counters per virtual server,
// location and upstream server.
type L7Stats = stats.Snapshot
