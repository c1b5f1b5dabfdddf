package l4

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Proto is the L4 protocol of a service.
type Proto string

// Mode is how a service forwards to its backends.
type Mode string

// BackendState says whether a backend takes new flows.
type BackendState string

// HashInput is what the flow hash covers.
type HashInput string

// The values of the service model.
const (
	TCP Proto = "tcp"
	UDP Proto = "udp"

	ModeDSRIPIP Mode = "dsr-ipip" // IPIP / IP6IP6 encapsulation to the backend
	ModeDSRL2   Mode = "dsr-l2"   // destination MAC rewrite; backends hold the VIP
	// ModeL7 hands the VIP:port to the L7 proxy (sk_lookup); its backends
	// are the upstreams of the proxy's virtual servers, not the service's.
	ModeL7 Mode = "l7"

	// Active backends take new flows; drain keeps existing flows and takes
	// no new ones; down is out of the table and its flows rehash.
	Active BackendState = "active"
	Drain  BackendState = "drain"
	Down   BackendState = "down"

	Hash5Tuple HashInput = "5-tuple"
	HashSrcIP  HashInput = "src-ip" // client affinity

	// DefaultTableSize is the Maglev table size unless a service asks for another.
	DefaultTableSize = 65537
	// DefaultWeight is a backend's weight unless it asks for another.
	DefaultWeight = 100
)

// Errors of service validation; each error names the field and wraps one.
var (
	ErrInvalidService = errors.New("invalid service")
	ErrVIPClash       = errors.New("vip clash")
)

// Backend is one backend of a service.
type Backend struct {
	Addr   netip.Addr   `json:"addr"`
	Weight uint16       `json:"weight"`
	State  BackendState `json:"state"`
}

// Service is an L4 virtual service: traffic to VIP:Port/Proto is spread over
// the backends at the NIC.
type Service struct {
	Name      string     `json:"name"`
	VIP       netip.Addr `json:"vip"`
	Port      uint16     `json:"port"` // 0: every port
	Proto     Proto      `json:"proto"`
	Mode      Mode       `json:"mode"`
	Backends  []Backend  `json:"backends"`
	TableSize uint32     `json:"table_size"`
	HashInput HashInput  `json:"hash_input"`
}

var serviceNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)

// Normalize fills the defaults: table size, hash input, backend states.
// Weights are explicit: 0 is a valid weight (no new flows).
func (s *Service) Normalize() {
	if s.Mode == ModeL7 {
		return // no table, no hash: the proxy balances
	}
	if s.TableSize == 0 {
		s.TableSize = DefaultTableSize
	}
	if s.HashInput == "" {
		s.HashInput = Hash5Tuple
	}
	for i := range s.Backends {
		if s.Backends[i].State == "" {
			s.Backends[i].State = Active
		}
	}
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidService, field, fmt.Sprintf(format, args...))
}

// Validate checks one service and returns the first problem, wrapping
// ErrInvalidService and naming the field.
func (s *Service) Validate() error {
	if !serviceNameRE.MatchString(s.Name) {
		return invalid("name", "%q: want 1-63 of A-Z a-z 0-9 . _ -", s.Name)
	}
	if !s.VIP.IsValid() || s.VIP.Zone() != "" || s.VIP.IsUnspecified() || s.VIP.IsMulticast() {
		return invalid("vip", "%q is not a unicast address", s.VIP)
	}
	if s.VIP.Is4In6() {
		return invalid("vip", "%s: write IPv4-mapped addresses as IPv4", s.VIP)
	}
	switch s.Proto {
	case TCP, UDP:
	default:
		return invalid("proto", "%q: want tcp or udp", s.Proto)
	}
	switch s.Mode {
	case ModeDSRIPIP, ModeDSRL2:
	case ModeL7:
		if s.Proto != TCP {
			return invalid("proto", "an l7 service is tcp")
		}
		if s.Port == 0 {
			return invalid("port", "an l7 service needs a port")
		}
		if len(s.Backends) > 0 {
			return invalid("backends", "an l7 service has none: its locations name upstreams")
		}
	default:
		return invalid("mode", "%q: want dsr-ipip, dsr-l2 or l7", s.Mode)
	}
	switch s.HashInput {
	case Hash5Tuple, HashSrcIP, "":
	default:
		return invalid("hash_input", "%q: want 5-tuple or src-ip", s.HashInput)
	}
	if s.TableSize != 0 && (!IsPrime(s.TableSize) || s.TableSize < 251 || s.TableSize > 1_000_003) {
		return invalid("table_size", "%d: %v", s.TableSize, ErrTableSize)
	}
	seen := map[netip.Addr]bool{}
	for i, b := range s.Backends {
		field := fmt.Sprintf("backends[%d]", i)
		if !b.Addr.IsValid() || b.Addr.Zone() != "" || b.Addr.IsUnspecified() || b.Addr.IsMulticast() {
			return invalid(field, "%q is not a unicast address", b.Addr)
		}
		// The encapsulation and the L2 rewrite both keep the VIP's family.
		if b.Addr.Is4() != s.VIP.Is4() {
			return invalid(field, "%s: backends must be of the VIP's address family (%s)", b.Addr, family(s.VIP))
		}
		if seen[b.Addr] {
			return invalid(field, "%s appears twice", b.Addr)
		}
		seen[b.Addr] = true
		switch b.State {
		case Active, Drain, Down, "":
		default:
			return invalid(field+".state", "%q: want active, drain or down", b.State)
		}
	}
	return nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// key is what the datapath looks a service up by.
type key struct {
	vip   netip.Addr
	port  uint16
	proto Proto
}

// ValidateSet checks every service and that no two claim the same VIP, port
// and protocol (a port-0 service clashes only with another port-0 service on
// the same VIP and protocol) or the same name.
func ValidateSet(services []Service) error {
	byKey := map[key]string{}
	names := map[string]bool{}
	for i := range services {
		s := &services[i]
		if err := s.Validate(); err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
		if names[s.Name] {
			return fmt.Errorf("%w: name %s is used twice", ErrInvalidService, s.Name)
		}
		names[s.Name] = true
		k := key{s.VIP, s.Port, s.Proto}
		if other, ok := byKey[k]; ok {
			return fmt.Errorf("%w: %s and %s both claim %s", ErrVIPClash, other, s.Name, s.Endpoint())
		}
		byKey[k] = s.Name
	}
	return nil
}

// Endpoint renders VIP:port/proto, with "*" for port 0.
func (s *Service) Endpoint() string {
	port := "*"
	if s.Port != 0 {
		port = fmt.Sprint(s.Port)
	}
	host := s.VIP.String()
	if s.VIP.Is6() {
		host = "[" + host + "]"
	}
	return host + ":" + port + "/" + strings.ToLower(string(s.Proto))
}

// MaglevBackends returns the backends that take new flows (active with a
// weight), as the table builder wants them.
func (s *Service) MaglevBackends() []MaglevBackend {
	out := make([]MaglevBackend, 0, len(s.Backends))
	for _, b := range s.Backends {
		if b.State == Active || b.State == "" {
			out = append(out, MaglevBackend{Addr: b.Addr, Weight: b.Weight})
		}
	}
	return out
}
