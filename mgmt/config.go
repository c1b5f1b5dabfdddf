package mgmt

import (
	"time"

	"github.com/sluicelb/sluice/l7"
	"github.com/sluicelb/sluice/l7/upstream"
)

// Config is the daemon's configuration: the YAML file (--config), overridden
// by flags. Durations and sizes are plain numbers so the file stays simple.
type Config struct {
	// Interfaces are the NICs the XDP program is attached to.
	Interfaces []string `yaml:"interfaces"`
	// XDPMode is auto (native, falling back to generic), native or generic.
	XDPMode string `yaml:"xdp_mode"`
	// Policy is the ACL mode, deny or allow. When set it is applied at start;
	// when empty the stored mode (deny for a new store) is kept.
	Policy string `yaml:"policy"`
	// Protect are the operator's management prefixes, never dropped. When set
	// they replace the stored ones at start.
	Protect []string `yaml:"protect"`
	// BPFFS is the directory under the bpffs where programs, links and maps are pinned.
	BPFFS string `yaml:"bpffs"`
	// StateDir holds the bbolt store of the desired state.
	StateDir string `yaml:"state_dir"`
	// ResetState starts from an empty desired state when the store is corrupt.
	ResetState bool `yaml:"-"`
	// ACLMaxEntries is the capacity of each ACL trie (IPv4 and IPv6).
	ACLMaxEntries uint32 `yaml:"acl_max_entries"`
	// L4 configures the L4 load balancer.
	L4 L4Config `yaml:"l4"`
	// L7 configures the L7 proxy.
	L7 L7Config `yaml:"l7"`
	// API configures the management API.
	API APIConfig `yaml:"api"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
}

// L4Config configures the L4 load balancer.
type L4Config struct {
	// FlowTableSize is the capacity of the connection table (LRU): of the
	// IPv4 one, and of the IPv6 one unless FlowTableSize6 is set. Each is
	// preallocated, ~80 bytes an IPv4 entry and ~104 an IPv6 one.
	FlowTableSize uint32 `yaml:"flow_table_size"`
	// FlowTableSize6 is the IPv6 connection table's capacity; 0: as
	// FlowTableSize. An edge with few IPv6 clients can keep it small.
	FlowTableSize6 uint32 `yaml:"flow_table_size6"`
	// FlowCacheSlots is the size of each CPU's flow cache, which sends TCP
	// flows on without a connection-table lookup: a power of two, 56 bytes
	// a slot on every CPU (the default 16384: 0.9 MB a CPU).
	FlowCacheSlots uint32 `yaml:"flow_cache_slots"`
	// EncapSource4 is the outer source range of IPIP (a prefix; a hash of
	// the flow picks the address, so backends' RSS spreads flows). Empty:
	// the VIP.
	EncapSource4 string `yaml:"encap_source4"`
	// EncapSource6 is the same for IP6IP6.
	EncapSource6 string `yaml:"encap_source6"`
	// NextHopMAC, when set, is the MAC every dsr-ipip frame is sent to (the
	// router's), instead of the neighbour table's answer for the route to
	// each backend. dsr-l2 always asks the neighbour table.
	NextHopMAC string `yaml:"next_hop_mac"`
	// UDPTimeoutSeconds is how long an idle UDP flow keeps its backend.
	UDPTimeoutSeconds int `yaml:"udp_timeout_seconds"`
}

// L7Config configures the L7 proxy's fixed limits; everything else about
// it is desired state, changed through the API.
type L7Config struct {
	// Disabled runs the daemon without the proxy and its intercept.
	Disabled bool `yaml:"disabled"`
	// ReadHeaderTimeoutSeconds cuts off a client that sends its request
	// headers too slowly (slowloris).
	ReadHeaderTimeoutSeconds int `yaml:"read_header_timeout_seconds"`
	// IdleTimeoutSeconds closes idle keep-alive connections.
	IdleTimeoutSeconds int `yaml:"idle_timeout_seconds"`
	// MaxHeaderBytes limits a request's headers.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
}

func (c L7Config) limits() l7.Limits {
	return l7.Limits{
		ReadHeaderTimeout: upstream.Duration(time.Duration(c.ReadHeaderTimeoutSeconds) * time.Second),
		IdleTimeout:       upstream.Duration(time.Duration(c.IdleTimeoutSeconds) * time.Second),
		MaxHeaderBytes:    c.MaxHeaderBytes,
	}
}

// APIConfig configures the management API listeners.
type APIConfig struct {
	// Socket is the unix socket path; always served.
	Socket string `yaml:"socket"`
	// Listen is an optional TCP address (host:port); it requires TokenFile.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token required on the TCP listener.
	TokenFile string `yaml:"token_file"`
	// MaxBodyBytes limits request bodies; larger ones get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// DefaultConfig returns the configuration used when neither file nor flags say otherwise.
func DefaultConfig() Config {
	return Config{
		XDPMode:       "auto",
		BPFFS:         "/sys/fs/bpf/sluice",
		StateDir:      "/var/lib/sluice",
		ACLMaxEntries: 1 << 22,
		L4:            L4Config{FlowTableSize: 1 << 20, FlowCacheSlots: 1 << 14, UDPTimeoutSeconds: 60},
		API: APIConfig{
			Socket:       "/run/sluice/sluice.sock",
			MaxBodyBytes: 256 << 20,
		},
		LogLevel: "info",
	}
}
