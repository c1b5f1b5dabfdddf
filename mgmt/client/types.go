package client

import "github.com/sluicelb/sluice/maps"

// Counter is a packet and byte count.
type Counter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Interface is an interface the XDP program is attached to.
type Interface struct {
	Name      string `json:"name"`
	Ifindex   int    `json:"ifindex"`
	XDPMode   string `json:"xdp_mode"`
	ProgramID uint32 `json:"program_id"`
	LinkID    uint32 `json:"link_id"`
}

// Status is GET /v1/status.
type Status struct {
	Version       string      `json:"version"`
	PID           int         `json:"pid,omitempty"`
	UptimeSeconds float64     `json:"uptime_seconds"`
	BPFFS         string      `json:"bpffs"`
	Interfaces    []Interface `json:"interfaces"`
}

// ListInfo describes a list in GET /v1/acl.
type ListInfo struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Entries int    `json:"entries"`
	Version string `json:"version"`
}

// ACL is GET /v1/acl.
type ACL struct {
	Policy  string     `json:"policy"`
	Protect []string   `json:"protect"`
	Lists   []ListInfo `json:"lists"`
}

// Policy is the body and answer of PUT /v1/acl/policy.
type Policy struct {
	Mode string `json:"mode"`
}

// Protect is the body and answer of PUT /v1/acl/protect.
type Protect struct {
	Prefixes []string `json:"prefixes"`
}

// SyncResult answers a list write (PUT or PATCH /v1/acl/lists/{name}).
type SyncResult struct {
	Name       string  `json:"name"`
	Kind       string  `json:"kind"`
	Version    string  `json:"version"`
	Added      int     `json:"added"`
	Removed    int     `json:"removed"`
	Entries    int     `json:"entries"`
	DurationMS float64 `json:"duration_ms"`
}

// List is GET /v1/acl/lists/{name}.
type List struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind"`
	Version string   `json:"version"`
	Entries []string `json:"entries"`
}

// CheckMatch is a list holding a prefix that contains the checked address.
type CheckMatch struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Prefix string `json:"prefix"`
}

// Check is GET /v1/acl/check.
type Check struct {
	IP      string       `json:"ip"`
	Verdict string       `json:"verdict"`
	Reason  string       `json:"reason"`
	Lists   []CheckMatch `json:"lists"`
}

// IfaceStats are one interface's verdict counters.
type IfaceStats struct {
	Name     string             `json:"name"`
	Ifindex  int                `json:"ifindex"`
	Verdicts map[string]Counter `json:"verdicts"`
}

// ListStats are one list's drops.
type ListStats struct {
	Name    string  `json:"name"`
	Kind    string  `json:"kind"`
	Entries int     `json:"entries"`
	Drops   Counter `json:"drops"`
}

// Stats is GET /v1/stats.
type Stats struct {
	Interfaces []IfaceStats       `json:"interfaces"`
	Drops      map[string]Counter `json:"drops"`
	Lists      []ListStats        `json:"lists"`
	L4         *L4Stats           `json:"l4,omitempty"` // nil from a daemon without L4
}

// L4Stats are the L4 load balancer's counters.
type L4Stats struct {
	Services  []ServiceStats `json:"services"`
	Conntrack maps.FlowStats `json:"conntrack"`
	Entries   int            `json:"conntrack_entries"`
}

// ServiceStats are one service's counters and its backends', by address.
type ServiceStats struct {
	Name     string                    `json:"name"`
	Counters maps.LBCounter            `json:"counters"`
	Backends map[string]maps.LBCounter `json:"backends"`
}
