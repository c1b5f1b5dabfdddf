// Package maps gives typed Go access to every BPF map of the Sluice
// datapath: the ACL tries (kept under the union rule), the policy, and the
// counters. Each map is reached through a small interface with an in-memory
// fake, so the layers above can be tested without privileges.
package maps

import (
	"errors"
	"net/netip"
)

// ListID names a list in the datapath: bit ListID of an ACL entry's mask.
type ListID uint8

const (
	// MaxLists is how many operator lists the datapath can hold (ids 0..62).
	MaxLists = 63
	// ProtectList is the reserved id of the protect prefixes, which are never dropped.
	ProtectList ListID = 63
)

// Bit returns the mask bit of the list.
func (id ListID) Bit() uint64 { return 1 << id }

// ErrInvalidPrefix is returned for a prefix that is not valid or not masked.
var ErrInvalidPrefix = errors.New("invalid prefix")

// PrefixMap is one LPM trie (IPv4 or IPv6) mapping a prefix to the bitmask of
// the lists that cover it. Implementations: the pinned BPF map, Fake, Faulty.
type PrefixMap interface {
	// Update writes every prefix with its mask, creating or replacing entries.
	// On error some entries may have been written; the caller rolls back.
	Update(prefixes []netip.Prefix, masks []uint64) error
	// Delete removes the prefixes; a prefix that is absent is not an error.
	Delete(prefixes []netip.Prefix) error
	// Iterate calls fn for every entry until fn returns false.
	Iterate(fn func(p netip.Prefix, mask uint64) bool) error
}

// PolicyMode is the ACL mode of the datapath.
type PolicyMode uint32

const (
	// PolicyDeny drops sources in a deny list unless an allow list holds them.
	PolicyDeny PolicyMode = 0
	// PolicyAllow drops IP sources that no allow list holds; deny lists still drop.
	PolicyAllow PolicyMode = 1
)

// Policy is the content of the acl_config map.
type Policy struct {
	Mode       PolicyMode
	DenyLists  uint64 // bit i: list i is a deny list
	AllowLists uint64 // bit i: list i is an allow list
}

// PolicyMap holds the single Policy entry.
type PolicyMap interface {
	SetPolicy(Policy) error
	Policy() (Policy, error)
}

// Counter is a packet and byte count summed over CPUs.
type Counter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Verdict indexes the per-interface verdict counters; it equals the XDP action.
type Verdict int

// The XDP verdicts, in XDP action order.
const (
	VerdictAborted Verdict = iota
	VerdictDrop
	VerdictPass
	VerdictTX
	VerdictRedirect
	// NumVerdicts is the number of verdict counters.
	NumVerdicts
)

// DropReason indexes the drop counters.
type DropReason int

// The drop reasons of the datapath, in enum drop_reason order.
const (
	DropACLDeny DropReason = iota
	DropACLNotAllowed
	DropMalformed
	DropLBNoBackend
	DropLBTooBig
	DropLBEncap
	DropLBNoRoute
	// NumDropReasons is the number of drop reasons.
	NumDropReasons
)

// Stats reads the datapath counters. All counters are summed over CPUs.
type Stats interface {
	// Iface returns the verdict counters of the interface with that index.
	Iface(ifindex int) ([NumVerdicts]Counter, error)
	// Drops returns the drop counters by reason.
	Drops() ([NumDropReasons]Counter, error)
	// Lists returns the drops attributed to each list, indexed by ListID.
	Lists() ([MaxLists + 1]Counter, error)
}

// String returns the verdict's name as the API and metrics show it.
func (v Verdict) String() string {
	switch v {
	case VerdictAborted:
		return "aborted"
	case VerdictDrop:
		return "drop"
	case VerdictPass:
		return "pass"
	case VerdictTX:
		return "tx"
	case VerdictRedirect:
		return "redirect"
	}
	return "unknown"
}

// String returns the reason's name as the API and metrics show it.
func (r DropReason) String() string {
	switch r {
	case DropACLDeny:
		return "acl_deny"
	case DropACLNotAllowed:
		return "acl_not_allowed"
	case DropMalformed:
		return "malformed"
	case DropLBNoBackend:
		return "lb_no_backend"
	case DropLBTooBig:
		return "lb_too_big"
	case DropLBEncap:
		return "lb_encap"
	case DropLBNoRoute:
		return "lb_no_route"
	}
	return "unknown"
}
