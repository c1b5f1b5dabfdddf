package l4

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/sluicelb/sluice/bpf"
	"github.com/sluicelb/sluice/maps"
)

// DefaultDecapPinDir is where `sluice decap` pins its links and maps on a backend.
const DefaultDecapPinDir = "/sys/fs/bpf/sluice-decap"

func vipKey(a netip.Addr) bpf.XDPSvcKey {
	if !a.IsValid() {
		return bpf.XDPSvcKey{} // the zero key: every inner destination the host does not route on
	}
	k := bpf.XDPSvcKey{Family: 6, Addr: a.As16()}
	if a.Is4() {
		k = bpf.XDPSvcKey{Family: 4}
		b := a.As4()
		copy(k.Addr[:], b[:])
	}
	return k
}

// Decap attaches the backend-side decapsulation program (bpf/decap.c) to
// iface: IPIP / IP6IP6 packets whose inner destination is one of vips lose
// their outer header before the stack sees them, so the backend needs no
// ipip module. Without vips, those the kernel would not route on to another
// host do: to a local address (the VIPs on the loopback), or any when the
// interface does not forward; a backend that routes keeps tunnels to its
// other networks as they are. The VIPs are a map pinned
// under pinDir, shared by every interface, and replaced by each call; the
// link is pinned too, so the program stays after the command exits.
func Decap(pinDir, iface string, vips []netip.Addr, mode XDPMode, log *slog.Logger) (Attachment, error) {
	if _, err := maps.EnsureBPFFS(pinDir); err != nil {
		return Attachment{}, err
	}
	mapDir := filepath.Join(pinDir, "maps")
	if err := os.MkdirAll(mapDir, 0o700); err != nil {
		return Attachment{}, err
	}
	spec, err := bpf.LoadDecap()
	if err != nil {
		return Attachment{}, err
	}
	for name, m := range spec.Maps {
		if maps.Shared(name) {
			m.Pinning = ebpf.PinByName
		}
	}
	var objs bpf.DecapObjects
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: mapDir}}); err != nil {
		return Attachment{}, fmt.Errorf("load decap program: %w", err)
	}
	defer objs.Close()
	if err := setDecapVIPs(objs.DecapVips, vips); err != nil {
		return Attachment{}, err
	}
	return Attach(objs.SluiceDecap, pinDir, iface, mode, log)
}

// setDecapVIPs makes the map hold exactly vips (or the zero key: every
// destination not routed on), adding before removing so a kept VIP is
// never absent.
func setDecapVIPs(m *ebpf.Map, vips []netip.Addr) error {
	want := map[bpf.XDPSvcKey]bool{}
	for _, a := range vips {
		want[vipKey(a)] = true
	}
	if len(vips) == 0 {
		want[vipKey(netip.Addr{})] = true
	}
	for k := range want {
		if err := m.Put(k, uint32(1)); err != nil {
			return fmt.Errorf("decap vips: %w", err)
		}
	}
	var k bpf.XDPSvcKey
	var v uint32
	var stale []bpf.XDPSvcKey
	it := m.Iterate()
	for it.Next(&k, &v) {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// DecapState is what `sluice decap --show` reports of a backend: where the
// program is attached, which inner destinations it strips, and how many
// tunnelled packets it stripped or left alone.
type DecapState struct {
	Interfaces []Attachment `json:"interfaces"`
	VIPs       []netip.Addr `json:"vips"`               // the ones listed (--vip)
	Local      bool         `json:"local_destinations"` // none listed: what the host does not route on
	Stripped   maps.Counter `json:"stripped"`
	NotLocal   maps.Counter `json:"not_local"` // tunnels to another destination, passed as they came
}

// ReadDecap reads the state of the decap program pinned under pinDir.
func ReadDecap(pinDir string) (DecapState, error) {
	st := DecapState{VIPs: []netip.Addr{}}
	open := func(name string) (*ebpf.Map, error) {
		m, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, "maps", name), nil)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no decap program is pinned under %s (sluice decap --iface IF attaches one)", pinDir)
		}
		return m, err
	}
	vips, err := open("decap_vips")
	if err != nil {
		return st, err
	}
	defer vips.Close()
	stats, err := open("decap_stats")
	if err != nil {
		return st, err
	}
	defer stats.Close()
	var k bpf.XDPSvcKey
	var v uint32
	it := vips.Iterate()
	for it.Next(&k, &v) {
		switch k.Family {
		case 0:
			st.Local = true
		case 4:
			st.VIPs = append(st.VIPs, netip.AddrFrom4([4]byte(k.Addr[:4])))
		default:
			st.VIPs = append(st.VIPs, netip.AddrFrom16(k.Addr))
		}
	}
	if err := it.Err(); err != nil {
		return st, fmt.Errorf("decap vips: %w", err)
	}
	slices.SortFunc(st.VIPs, netip.Addr.Compare)
	if st.Stripped, err = maps.SumCounters(stats, uint32(bpf.DecapDecapCounterDECAP_STRIPPED)); err != nil {
		return st, fmt.Errorf("decap counters: %w", err)
	}
	if st.NotLocal, err = maps.SumCounters(stats, uint32(bpf.DecapDecapCounterDECAP_NOT_LOCAL)); err != nil {
		return st, fmt.Errorf("decap counters: %w", err)
	}
	if st.Interfaces, err = Attached(pinDir); err != nil {
		return st, err
	}
	return st, nil
}
