package intercept

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/cilium/ebpf"

	"github.com/sluicelb/sluice/bpf"
)

// Slots of the proxy's listeners in the program's SOCKMAP.
const (
	SlotTCP4 uint32 = 0 // the IPv4 listener
	SlotTCP6 uint32 = 1 // the IPv6 (v6-only) listener
)

// ipprotoTCP is the protocol of every endpoint Maps steers.
const ipprotoTCP = 6

// ErrInvalidEndpoint is returned for an endpoint that cannot be steered:
// an invalid, unspecified, multicast or zoned address.
var ErrInvalidEndpoint = errors.New("invalid endpoint")

// Maps is typed access to the maps of the sk_lookup program
// (bpf/sk_lookup.c): the endpoints it steers, the listeners it steers them
// to, and its counters. The BPF tests provision the program through it. A
// Maps is safe for concurrent use: every method is one map operation.
type Maps struct {
	endpoints *ebpf.Map
	sockets   *ebpf.Map
	counters  *ebpf.Map
}

// NewMaps wraps the loaded maps of the program.
func NewMaps(m *bpf.SkLookupMaps) *Maps {
	return &Maps{endpoints: m.SteerEndpoints, sockets: m.SteerSockets, counters: m.SteerCounters}
}

// Stats are the program's counters summed over the CPUs.
type Stats struct {
	Steered  uint64 // lookups handed to a listener
	NoSocket uint64 // lookups for an endpoint whose listener slot was empty
	Refused  uint64 // lookups whose listener the kernel refused (family or protocol mismatch)
}

// SetListener puts a listening socket into slot. The socket must be a plain
// TCP (not MPTCP) listener, or the kernel refuses it (EOPNOTSUPP). A socket
// leaves the map by itself when it is closed.
func (m *Maps) SetListener(slot uint32, c syscall.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("listener for slot %d: %w", slot, err)
	}
	var uerr error
	if err := raw.Control(func(fd uintptr) {
		uerr = m.sockets.Update(slot, uint64(fd), ebpf.UpdateAny)
	}); err != nil {
		return fmt.Errorf("listener for slot %d: %w", slot, err)
	}
	if uerr != nil {
		return fmt.Errorf("put listener in slot %d: %w", slot, uerr)
	}
	return nil
}

// Steer makes TCP connections to ep land on the listener in slot; port 0
// covers every port of the address, and an entry with the exact port wins
// over it. It returns an error wrapping ErrInvalidEndpoint for an address
// that cannot be steered.
func (m *Maps) Steer(ep netip.AddrPort, slot uint32) error {
	k, err := steerKey(ep)
	if err != nil {
		return err
	}
	if err := m.endpoints.Update(&k, slot, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("steer %s: %w", ep, err)
	}
	return nil
}

// Unsteer stops steering ep; an endpoint that is not steered is no error.
func (m *Maps) Unsteer(ep netip.AddrPort) error {
	k, err := steerKey(ep)
	if err != nil {
		return err
	}
	if err := m.endpoints.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unsteer %s: %w", ep, err)
	}
	return nil
}

// Stats reads the counters.
func (m *Maps) Stats() (Stats, error) {
	var per []bpf.SkLookupSteerStats
	if err := m.counters.Lookup(uint32(0), &per); err != nil {
		return Stats{}, fmt.Errorf("read sk_lookup counters: %w", err)
	}
	var s Stats
	for _, c := range per {
		s.Steered += c.Steered
		s.NoSocket += c.NoSocket
		s.Refused += c.Refused
	}
	return s, nil
}

// normalize returns ep with an IPv4-mapped address unmapped, or an error
// wrapping ErrInvalidEndpoint.
func normalize(ep netip.AddrPort) (netip.AddrPort, error) {
	a := ep.Addr()
	switch {
	case !a.IsValid():
		return ep, fmt.Errorf("%w: no address", ErrInvalidEndpoint)
	case a.Zone() != "":
		return ep, fmt.Errorf("%w: %s has a zone", ErrInvalidEndpoint, ep)
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsMulticast() {
		return ep, fmt.Errorf("%w: %s is not a unicast address", ErrInvalidEndpoint, ep)
	}
	return netip.AddrPortFrom(a, ep.Port()), nil
}

// steerKey lays ep out as struct steer_key: IPv4 in the first 4 bytes, the
// port in network order.
func steerKey(ep netip.AddrPort) (bpf.SkLookupSteerKey, error) {
	ep, err := normalize(ep)
	if err != nil {
		return bpf.SkLookupSteerKey{}, err
	}
	k := bpf.SkLookupSteerKey{Proto: ipprotoTCP, Family: 6}
	if ep.Addr().Is4() {
		k.Family = 4
	}
	copy(k.Addr[:], ep.Addr().AsSlice())
	k.Port = binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, ep.Port()))
	return k, nil
}
