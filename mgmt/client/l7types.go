package client

import (
	"github.com/sluicelb/sluice/l7"
	"github.com/sluicelb/sluice/l7/accesslog"
	"github.com/sluicelb/sluice/l7/stats"
	"github.com/sluicelb/sluice/l7/upstream"
)

// The L7 configuration is the proxy's own types, as the services are
// l4.Service; the views of the API are mirrored field for field in their
// JSON, and a test of cmd/sluice, which links both, keeps them in step.
type (
	Duration       = upstream.Duration
	VServer        = l7.VServer
	Location       = l7.Location
	Upstream       = upstream.Config
	UpstreamTLS    = upstream.TLSConfig
	Server         = upstream.ServerConfig
	ServerPatch    = upstream.ServerPatch // nil fields stay as they are
	Cert           = l7.Cert
	AccessLog      = accesslog.Config
	AccessLogStats = accesslog.Stats
)

// VServerView is a virtual server as the daemon reports it.
type VServerView struct {
	VServer
	Version uint64 `json:"version"`
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

// AccessLogStatus is GET /v1/accesslog: the configuration and, from a
// running proxy, the logger's counters.
type AccessLogStatus struct {
	Config AccessLog       `json:"config"`
	Stats  *AccessLogStats `json:"stats,omitempty"`
}

// L7Stats is GET /v1/stats/l7: the proxy's counters per virtual server,
// location and upstream server.
type L7Stats = stats.Snapshot
