package maps

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/sluicelb/sluice/bpf"
)

// DatapathOptions say where the datapath is pinned and how large it is.
type DatapathOptions struct {
	// PinDir is the bpffs directory of this Sluice instance; maps go in PinDir/maps.
	PinDir string
	// ACLMaxEntries is the capacity of each ACL trie; 0 keeps the compiled default.
	ACLMaxEntries uint32
	// FlowTableSize is the capacity of the IPv4 connection table, and of
	// the IPv6 one unless FlowTableSize6 is set; 0 keeps the compiled
	// default.
	FlowTableSize, FlowTableSize6 uint32
	// FlowCacheSlots is the size of each CPU's flow cache (a power of two);
	// 0 keeps the compiled default.
	FlowCacheSlots uint32
}

// Datapath is the loaded XDP program and its pinned maps.
type Datapath struct {
	objs      bpf.XDPObjects
	innerSpec *ebpf.MapSpec // the template of the Maglev tables
	// Fresh names the maps that were created by this load rather than reused
	// from pins: their content must be written before the program goes live.
	Fresh []string
}

// OpenDatapath loads the XDP program. Maps pinned by an earlier run are reused,
// so their content (and the filtering done with it) survives a restart; a
// pinned map whose layout no longer matches the program is replaced by a new
// one, which the caller fills before attaching. Swapping the program in the
// pinned links is what makes replaced maps live.
func OpenDatapath(opts DatapathOptions) (*Datapath, error) {
	spec, err := bpf.LoadXDP()
	if err != nil {
		return nil, fmt.Errorf("load xdp spec: %w", err)
	}
	if opts.ACLMaxEntries > 0 {
		for _, name := range []string{bpf.XDPMapAclV4, bpf.XDPMapAclV6, bpf.XDPMapAclV4Host, bpf.XDPMapAclV6Host} {
			spec.Maps[name].MaxEntries = opts.ACLMaxEntries
		}
	}
	size6 := opts.FlowTableSize6
	if size6 == 0 {
		size6 = opts.FlowTableSize
	}
	bpf.SetFlowTableSize(spec, opts.FlowTableSize, size6)
	if err := bpf.SetFlowCacheSlots(spec, opts.FlowCacheSlots); err != nil {
		return nil, err
	}
	pinDir := filepath.Join(opts.PinDir, "maps")
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return nil, fmt.Errorf("create pin dir: %w", err)
	}
	dp := &Datapath{innerSpec: spec.Maps[bpf.XDPMapLbMaglev].InnerMap}
	replacements := map[string]*ebpf.Map{}
	for name, ms := range spec.Maps {
		if !Shared(name) {
			continue
		}
		path := filepath.Join(pinDir, name)
		m, err := ebpf.LoadPinnedMap(path, nil)
		switch {
		case err == nil:
			if cerr := ms.Compatible(m); cerr == nil {
				replacements[name] = m
				continue
			}
			m.Close()
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("open pinned map %s: %w", name, err)
		}
		dp.Fresh = append(dp.Fresh, name)
	}
	err = spec.LoadAndAssign(&dp.objs, &ebpf.CollectionOptions{MapReplacements: replacements})
	for _, m := range replacements {
		m.Close()
	}
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load xdp program: %+v", ve)
		}
		return nil, fmt.Errorf("load xdp program: %w", err)
	}
	lb := dp.LB()
	if err := lb.SyncVIPFilter(); err != nil {
		dp.Close()
		return nil, err
	}
	if err := lb.SyncServiceIDs(); err != nil {
		dp.Close()
		return nil, err
	}
	if slices.Contains(dp.Fresh, bpf.XDPMapLbFlows4) && !slices.Contains(dp.Fresh, bpf.XDPMapLbFlows) {
		if _, err := lb.MoveIPv4Flows(); err != nil {
			dp.Close()
			return nil, err
		}
	}
	// A daemon that stopped between a write and its invalidation (see
	// InvalidateFlowCache) left caches that may differ from the tables.
	if err := lb.InvalidateFlowCache(); err != nil {
		dp.Close()
		return nil, err
	}
	return dp, nil
}

// PinFresh pins the maps this load created, replacing stale pins. Call it
// after the program that uses them is attached.
func (d *Datapath) PinFresh(pinDir string) error {
	for _, name := range d.Fresh {
		if m := d.mapByName(name); m != nil {
			if err := pin(pinDir, name, m); err != nil {
				return err
			}
		}
	}
	d.Fresh = nil
	return nil
}

// Reclaim pins again every map of this load whose pin another load took
// over: a successor that replaced maps (a new layout or size) and then
// failed leaves its maps pinned, and this daemon, which serves on with its
// own, swaps its program back into the links first (see l4.Attach).
// It returns the names of the maps it pinned again.
func (d *Datapath) Reclaim(pinDir string) ([]string, error) {
	var pinned []string
	for name, m := range d.eachMap {
		if !Shared(name) {
			continue
		}
		same, err := pinnedIs(filepath.Join(pinDir, "maps", name), m)
		if err != nil {
			return pinned, err
		}
		if same {
			continue
		}
		if err := pin(pinDir, name, m); err != nil {
			return pinned, err
		}
		pinned = append(pinned, name)
	}
	return pinned, nil
}

// pinnedIs reports whether the map pinned at path is m.
func pinnedIs(path string, m *ebpf.Map) (bool, error) {
	p, err := ebpf.LoadPinnedMap(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open pinned map %s: %w", path, err)
	}
	defer p.Close()
	pi, err1 := p.Info()
	mi, err2 := m.Info()
	if err := errors.Join(err1, err2); err != nil {
		return false, fmt.Errorf("map info of %s: %w", path, err)
	}
	pid, _ := pi.ID()
	mid, _ := mi.ID()
	return pid == mid, nil
}

// Shared reports whether a map of a program's spec is state shared through
// a pin: not one of the object's own sections (.bss, .data, .rodata, which
// hold its globals and constants), whose pins the kernel would refuse or
// another load would take as its own.
func Shared(name string) bool { return !strings.HasPrefix(name, ".") }

// pin pins m as name, replacing what is pinned there.
func pin(pinDir, name string, m *ebpf.Map) error {
	path := filepath.Join(pinDir, "maps", name)
	// Unpin first: Pin to the path the map remembers as its own is a no-op,
	// even when another load's map was pinned there since.
	if err := m.Unpin(); err != nil {
		return fmt.Errorf("remove pin of %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale pin %s: %w", path, err)
	}
	if err := m.Pin(path); err != nil {
		return fmt.Errorf("pin map %s: %w", name, err)
	}
	return nil
}

// mapByName finds a map of the program by its C name.
func (d *Datapath) mapByName(name string) *ebpf.Map {
	for n, m := range d.eachMap {
		if n == name {
			return m
		}
	}
	return nil
}

// eachMap yields the program's maps by their C names, through the ebpf
// struct tags bpf2go writes, so a new map needs no code here.
func (d *Datapath) eachMap(yield func(string, *ebpf.Map) bool) {
	v := reflect.ValueOf(&d.objs.XDPMaps).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("ebpf")
		if m, _ := v.Field(i).Interface().(*ebpf.Map); m != nil && name != "" && !yield(name, m) {
			return
		}
	}
}

// Program returns the XDP program.
func (d *Datapath) Program() *ebpf.Program { return d.objs.SluiceXdp }

// ACL returns the union-rule keeper over the datapath's tries, host hashes
// and IPv4 index. When this load created the index's maps, the index is
// built now. When it reuses pinned ones, they keep what the last run wrote
// (the answers of the state before the restart) until Reconcile rebuilds
// them from the restored model; when only some are new, the index sends
// every lookup to the tries until then.
func (d *Datapath) ACL() (*ACL, error) {
	fresh := 0
	names := []string{bpf.XDPMapAclV4Index, bpf.XDPMapAclV4Hosts, bpf.XDPMapAclClasses}
	for _, name := range names {
		if slices.Contains(d.Fresh, name) {
			fresh++
		}
	}
	state := IndexStale
	switch fresh {
	case len(names):
		state = IndexEmpty
	case 0:
		state = IndexPinned
	}
	return newACLFromObjects(&d.objs, state)
}

// Policy returns the policy map.
func (d *Datapath) Policy() PolicyMap { return NewPolicyMap(d.objs.AclConfig) }

// Stats returns the counters.
func (d *Datapath) Stats() Stats {
	return NewStats(d.objs.StatsIface, d.objs.StatsDrop, d.objs.StatsList)
}

// Close releases the Go handles; pinned maps and links stay in the kernel.
func (d *Datapath) Close() error { return d.objs.Close() }
