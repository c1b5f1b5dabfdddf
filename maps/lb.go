package maps

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"

	"github.com/sluicelb/sluice/bpf"
)

// NoBackend marks a Maglev slot that names no backend (NO_BACKEND in C).
const NoBackend = ^uint32(0)

// Protocol numbers of the service keys.
const (
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// ServiceKey is what the datapath looks a service up by.
type ServiceKey struct {
	VIP   netip.Addr
	Port  uint16 // 0: every port
	Proto uint8  // ProtoTCP or ProtoUDP
}

// ServiceEntry is a service as the datapath sees it.
type ServiceEntry struct {
	ID        uint32 // its Maglev table and counters
	TableSize uint32
	Mode      bpf.XDPLbMode
	Hash      bpf.XDPLbHash
}

// BackendEntry is one backend of one service.
type BackendEntry struct {
	Addr    netip.Addr
	MAC     net.HardwareAddr // the next hop towards it
	Ifindex uint32           // egress; 0: the ingress interface
	Service uint32           // the id of its service
	Down    bool             // its flows rehash
}

// LBSettings are the L4 stage's global settings.
type LBSettings struct {
	UDPTimeout time.Duration // idle UDP flows rehash after this; 0: never
	EncapSrc4  netip.Prefix  // outer IPIP sources; the flow hash fills the host bits
	EncapSrc6  netip.Prefix  // outer IP6IP6 sources
}

// LBCounter counts a service's or a backend's traffic, summed over CPUs.
type LBCounter struct {
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
	NewFlows uint64 `json:"new_flows"`
}

// FlowStats are the connection table's counters, summed over CPUs.
type FlowStats struct {
	// Hits counts the packets of flows the table knew, CacheHits those of
	// them that a CPU's flow cache sent on without a table lookup.
	Hits        uint64 `json:"hits"`
	CacheHits   uint64 `json:"cache_hits"`
	Misses      uint64 `json:"misses"`
	ICMPRouted  uint64 `json:"icmp_routed"`
	EchoReplies uint64 `json:"echo_replies"`
	TooBig      uint64 `json:"too_big"`
}

// LB is the L4 datapath's maps.
type LB struct {
	services, svcIDs, vips, vipFilter, maglev, backends, settings, ifaces, txPorts *ebpf.Map
	flows4, flows6                                                                 *ebpf.Map // the connection table, by family
	statsSvc, statsBackend, statsFlows                                             *ebpf.Map
	flowGen                                                                        *ebpf.Map // the flow caches' generation
	innerSpec                                                                      *ebpf.MapSpec
}

// LB returns the L4 maps of the datapath.
func (d *Datapath) LB() *LB {
	return lbOf(&d.objs, d.innerSpec)
}

// lbOf is the L4 maps of loaded objects; innerSpec is the Maglev tables' spec.
func lbOf(o *bpf.XDPObjects, innerSpec *ebpf.MapSpec) *LB {
	return &LB{services: o.LbServices, svcIDs: o.LbSvcIds, vips: o.LbVips, vipFilter: o.LbVipFilter, maglev: o.LbMaglev, backends: o.LbBackends,
		flows4: o.LbFlows4, flows6: o.LbFlows, settings: o.LbConfig, ifaces: o.LbIfaces, txPorts: o.LbTxPorts,
		statsSvc: o.StatsSvc, statsBackend: o.StatsBackend, statsFlows: o.StatsFlows, flowGen: o.LbFlowGen, innerSpec: innerSpec}
}

// NewLB wraps the L4 maps of loaded XDP objects (tests and tools that load
// the program themselves).
func NewLB(o *bpf.XDPObjects) (*LB, error) {
	spec, err := bpf.LoadXDP()
	if err != nil {
		return nil, err
	}
	return lbOf(o, spec.Maps[bpf.XDPMapLbMaglev].InnerMap), nil
}

func be16(v uint16) uint16 { return v>>8 | v<<8 }

func addr16(a netip.Addr) (out [16]byte, family uint8) {
	if a.Is4() {
		b := a.As4()
		copy(out[:], b[:])
		return out, 4
	}
	return a.As16(), 6
}

func addrFrom(b [16]byte, family uint8) netip.Addr {
	if family == 4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

func (k ServiceKey) raw() bpf.XDPSvcKey {
	a, fam := addr16(k.VIP)
	return bpf.XDPSvcKey{Addr: a, Port: be16(k.Port), Proto: k.Proto, Family: fam}
}

// PutService creates or replaces a service entry. Its Maglev table must be
// in place first, or its packets are dropped as having no backend. The
// entry goes into lb_services, then into lb_svc_ids at its id, where
// connection-table hits find it.
func (l *LB) PutService(k ServiceKey, e ServiceEntry) error {
	v := e.raw()
	if err := l.services.Put(k.raw(), v); err != nil {
		return fmt.Errorf("put service %v: %w", k, err)
	}
	if err := l.svcIDs.Put(e.ID, svcEntry(k.raw(), v)); err != nil {
		return fmt.Errorf("put service %v by id %d: %w", k, e.ID, err)
	}
	return nil
}

// DeleteService removes a service entry; an absent one is not an error.
// Its id's entry in lb_svc_ids goes first, unless it already names another
// key (the id's service moved to a new one), so no hit finds a service that
// lb_services no longer has: the flows of the id look the service up by
// their key until the id is given again.
func (l *LB) DeleteService(k ServiceKey) error {
	rk := k.raw()
	var v bpf.XDPSvcInfo
	err := l.services.Lookup(rk, &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read service %v: %w", k, err)
	}
	var e bpf.XDPSvcEntry
	if err := l.svcIDs.Lookup(v.Id, &e); err == nil && e.Key == rk {
		if err := l.svcIDs.Put(v.Id, bpf.XDPSvcEntry{}); err != nil {
			return fmt.Errorf("clear service %v by id %d: %w", k, v.Id, err)
		}
	}
	if err := l.services.Delete(rk); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete service %v: %w", k, err)
	}
	return nil
}

func (e ServiceEntry) raw() bpf.XDPSvcInfo {
	return bpf.XDPSvcInfo{Id: e.ID, TableSize: e.TableSize, Mode: uint8(e.Mode), Hash: uint8(e.Hash)}
}

// svcEntry is a service's entry in lb_svc_ids.
func svcEntry(k bpf.XDPSvcKey, v bpf.XDPSvcInfo) bpf.XDPSvcEntry {
	return bpf.XDPSvcEntry{Key: k, Info: v, ModMagic: modMagic(v.TableSize)}
}

// modMagic is ceil(2^64 / d), with which slot_of() in lb.h takes a flow
// hash modulo d without a division; 0 (for d of 0 or 1) makes it divide.
func modMagic(d uint32) uint64 {
	if d < 2 {
		return 0
	}
	return ^uint64(0)/uint64(d) + 1
}

// SyncServiceIDs rewrites lb_svc_ids from lb_services: a new map beside
// pinned services (an upgrade) is filled at once, and a pinned one holds
// no id that lb_services does not. Where ids are not in it, hits look the
// service up by the flow, so it is correct, only slower, until then.
func (l *LB) SyncServiceIDs() error {
	n := l.svcIDs.MaxEntries()
	entries := make([]bpf.XDPSvcEntry, n)
	var k bpf.XDPSvcKey
	var v bpf.XDPSvcInfo
	it := l.services.Iterate()
	for it.Next(&k, &v) {
		if v.Id < n {
			entries[v.Id] = svcEntry(k, v)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read services: %w", err)
	}
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i)
	}
	return putAll(l.svcIDs, ids, entries)
}

// Services reads every service entry.
func (l *LB) Services() (map[ServiceKey]ServiceEntry, error) {
	out := map[ServiceKey]ServiceEntry{}
	var k bpf.XDPSvcKey
	var v bpf.XDPSvcInfo
	it := l.services.Iterate()
	for it.Next(&k, &v) {
		out[ServiceKey{VIP: addrFrom(k.Addr, k.Family), Port: be16(k.Port), Proto: k.Proto}] =
			ServiceEntry{ID: v.Id, TableSize: v.TableSize, Mode: bpf.XDPLbMode(v.Mode), Hash: bpf.XDPLbHash(v.Hash)}
	}
	return out, it.Err()
}

// PutVIP marks an address as a VIP (echo requests to it are answered, and
// its packets looked up as services): in lb_vips, then in the filter the
// datapath checks first. VIP changes must not run concurrently.
func (l *LB) PutVIP(a netip.Addr) error {
	k := ServiceKey{VIP: a}.raw()
	if err := l.vips.Put(k, uint32(1)); err != nil {
		return fmt.Errorf("put vip %s: %w", a, err)
	}
	word, bit := vipBit(k.Addr)
	var v uint64
	if err := l.vipFilter.Lookup(word, &v); err != nil {
		return fmt.Errorf("read vip filter: %w", err)
	}
	if err := l.vipFilter.Put(word, v|bit); err != nil {
		return fmt.Errorf("write vip filter: %w", err)
	}
	return nil
}

// DeleteVIP unmarks a VIP; an absent one is not an error. Its filter bit is
// cleared unless another VIP shares it.
func (l *LB) DeleteVIP(a netip.Addr) error {
	k := ServiceKey{VIP: a}.raw()
	if err := l.vips.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	words, err := l.vipWords()
	if err != nil {
		return err
	}
	word, _ := vipBit(k.Addr)
	if err := l.vipFilter.Put(word, words[word]); err != nil {
		return fmt.Errorf("write vip filter: %w", err)
	}
	return nil
}

// vipFilterBits is VIP_FILTER_BITS in consts.h.
const vipFilterBits = 16

// vipBit returns the word and bit of vip_maybe() in lb.h for an address laid
// out as in svc_key: the XOR of its four words, read as the datapath reads
// them (little-endian), hashed to vipFilterBits.
func vipBit(a [16]byte) (uint32, uint64) {
	fold := binary.LittleEndian.Uint32(a[0:]) ^ binary.LittleEndian.Uint32(a[4:]) ^
		binary.LittleEndian.Uint32(a[8:]) ^ binary.LittleEndian.Uint32(a[12:])
	h := (fold * fibHashMul) >> (32 - vipFilterBits)
	return h >> 6, 1 << (h & 63)
}

// vipWords computes the filter from lb_vips.
func (l *LB) vipWords() ([]uint64, error) {
	words := make([]uint64, 1<<(vipFilterBits-6))
	var k bpf.XDPSvcKey
	var v uint32
	it := l.vips.Iterate()
	for it.Next(&k, &v) {
		w, bit := vipBit(k.Addr)
		words[w] |= bit
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read vips: %w", err)
	}
	return words, nil
}

// SyncVIPFilter rewrites the whole filter from lb_vips: a new filter map
// beside pinned VIPs would otherwise hide their services from the datapath.
func (l *LB) SyncVIPFilter() error {
	words, err := l.vipWords()
	if err != nil {
		return err
	}
	ids := make([]uint32, len(words))
	for i := range ids {
		ids[i] = uint32(i)
	}
	return putAll(l.vipFilter, ids, words)
}

// InvalidateFlowCache makes every CPU's flow cache forget what it holds
// (lb_flow_gen in bpf/include/maps.h): their flows go to the connection
// table again, once each. A cached flow is checked on every packet as a
// table hit is (its service, its backend's owner and state), so a cache
// can differ from the table only in which backend the table names for a
// flow. The table changes that under a cache when the daemon writes it, or
// when another CPU gives the flow a new backend, which it does only while
// the old one is unusable, and that one becomes usable again only through
// PutBackend. So this runs after those writes. (An entry the LRU evicted
// and another CPU re-picked from a changed Maglev table differs until the
// cache's next turn at the table, FLOW_CACHE_REFRESH packets at most; such
// an eviction moves the flow without a cache too.)
func (l *LB) InvalidateFlowCache() error {
	var gen uint32
	if err := l.flowGen.Lookup(uint32(0), &gen); err != nil {
		return fmt.Errorf("read the flow caches' generation: %w", err)
	}
	if err := l.flowGen.Put(uint32(0), gen+1); err != nil {
		return fmt.Errorf("invalidate the flow caches: %w", err)
	}
	return nil
}

// PutBackend writes backend id.
func (l *LB) PutBackend(id uint32, b BackendEntry) error {
	a, fam := addr16(b.Addr)
	v := bpf.XDPBackendInfo{Addr: a, Family: fam, Ifindex: b.Ifindex, Svc: b.Service}
	copy(v.Mac[:], b.MAC)
	if b.Down {
		v.Flags |= uint8(bpf.XDPBackendFlagBACKEND_F_DOWN)
	}
	if err := l.backends.Put(id, v); err != nil {
		return fmt.Errorf("put backend %d (%s): %w", id, b.Addr, err)
	}
	return l.InvalidateFlowCache()
}

// ClearBackend frees backend id: flows that still name it rehash.
func (l *LB) ClearBackend(id uint32) error {
	if err := l.backends.Put(id, bpf.XDPBackendInfo{}); err != nil {
		return fmt.Errorf("clear backend %d: %w", id, err)
	}
	return l.InvalidateFlowCache()
}

// Backends reads every backend in use, by id.
func (l *LB) Backends() (map[uint32]BackendEntry, error) {
	out := map[uint32]BackendEntry{}
	var id uint32
	var v bpf.XDPBackendInfo
	it := l.backends.Iterate()
	for it.Next(&id, &v) {
		if v.Family == 0 {
			continue
		}
		out[id] = BackendEntry{Addr: addrFrom(v.Addr, v.Family), MAC: net.HardwareAddr(v.Mac[:]),
			Ifindex: v.Ifindex, Service: v.Svc, Down: v.Flags&uint8(bpf.XDPBackendFlagBACKEND_F_DOWN) != 0}
	}
	return out, it.Err()
}

// SwapTable gives service id a new Maglev table of backend ids: a new inner
// map is filled first and then replaces the old one in a single update, so
// a packet sees the old table or the new one, never a mix.
func (l *LB) SwapTable(svc uint32, table []uint32) error {
	spec := l.innerSpec.Copy()
	spec.MaxEntries = uint32(len(table))
	spec.Name = fmt.Sprintf("maglev_%d", svc)
	inner, err := ebpf.NewMap(spec)
	if err != nil {
		return fmt.Errorf("create maglev table of service %d: %w", svc, err)
	}
	defer inner.Close()
	keys := make([]uint32, len(table))
	for i := range keys {
		keys[i] = uint32(i)
	}
	if _, err := inner.BatchUpdate(keys, table, nil); err != nil {
		return fmt.Errorf("fill maglev table of service %d: %w", svc, err)
	}
	if err := l.maglev.Put(svc, inner); err != nil {
		return fmt.Errorf("swap maglev table of service %d: %w", svc, err)
	}
	return nil
}

// Table reads service id's Maglev table.
func (l *LB) Table(svc uint32) ([]uint32, error) {
	var inner *ebpf.Map
	if err := l.maglev.Lookup(svc, &inner); err != nil {
		return nil, fmt.Errorf("maglev table of service %d: %w", svc, err)
	}
	defer inner.Close()
	out := make([]uint32, inner.MaxEntries())
	for i := range out {
		if err := inner.Lookup(uint32(i), &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DeleteTable removes service id's Maglev table; an absent one is not an error.
func (l *LB) DeleteTable(svc uint32) error {
	if err := l.maglev.Delete(svc); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete maglev table of service %d: %w", svc, err)
	}
	return nil
}

// SetSettings writes the global L4 settings.
func (l *LB) SetSettings(s LBSettings) error {
	v := bpf.XDPLbSettings{UdpTimeoutNs: uint64(s.UDPTimeout)}
	if s.EncapSrc4.IsValid() {
		if !s.EncapSrc4.Addr().Is4() {
			return fmt.Errorf("encap source %s is not IPv4", s.EncapSrc4)
		}
		v.EncapSrc4 = s.EncapSrc4.Masked().Addr().As4()
		v.EncapSrc4Bits = uint8(s.EncapSrc4.Bits())
	}
	if s.EncapSrc6.IsValid() {
		if !s.EncapSrc6.Addr().Is6() || s.EncapSrc6.Addr().Is4In6() {
			return fmt.Errorf("encap source %s is not IPv6", s.EncapSrc6)
		}
		v.EncapSrc6 = s.EncapSrc6.Masked().Addr().As16()
		v.EncapSrc6Bits = uint8(s.EncapSrc6.Bits())
	}
	return l.settings.Put(uint32(0), v)
}

// SetIface records an interface's MAC and MTU (the source MAC of forwarded
// frames, and the size past which the datapath answers "too big"), and lets
// the datapath redirect to it.
func (l *LB) SetIface(ifindex int, mac net.HardwareAddr, mtu int) error {
	v := bpf.XDPLbIface{Mtu: uint16(min(mtu, 0xffff))}
	copy(v.Mac[:], mac)
	if err := l.ifaces.Put(IfindexSlot(ifindex), v); err != nil {
		return fmt.Errorf("record interface %d: %w", ifindex, err)
	}
	if err := l.txPorts.Put(uint32(ifindex), uint32(ifindex)); err != nil {
		return fmt.Errorf("add interface %d to the redirect map: %w", ifindex, err)
	}
	return nil
}

func sumLB(vs []bpf.XDPLbCounter) LBCounter {
	var c LBCounter
	for _, v := range vs {
		c.Packets += v.Packets
		c.Bytes += v.Bytes
		c.NewFlows += v.NewFlows
	}
	return c
}

// ServiceStats returns service id's counters.
func (l *LB) ServiceStats(id uint32) (LBCounter, error) {
	var vs []bpf.XDPLbCounter
	err := l.statsSvc.Lookup(id, &vs)
	return sumLB(vs), err
}

// BackendStats returns backend id's counters.
func (l *LB) BackendStats(id uint32) (LBCounter, error) {
	var vs []bpf.XDPLbCounter
	err := l.statsBackend.Lookup(id, &vs)
	return sumLB(vs), err
}

// ResetBackendStats zeroes backend id's counters, for an id given to a new backend.
func (l *LB) ResetBackendStats(id uint32) error {
	zero := make([]bpf.XDPLbCounter, ebpf.MustPossibleCPU())
	return l.statsBackend.Put(id, zero)
}

// ResetServiceStats zeroes service id's counters, for an id given to a new service.
func (l *LB) ResetServiceStats(id uint32) error {
	zero := make([]bpf.XDPLbCounter, ebpf.MustPossibleCPU())
	return l.statsSvc.Put(id, zero)
}

// FlowStats returns the connection table's counters.
func (l *LB) FlowStats() (FlowStats, error) {
	var vs []bpf.XDPLbFlowStats
	var s FlowStats
	if err := l.statsFlows.Lookup(uint32(0), &vs); err != nil {
		return s, err
	}
	for _, v := range vs {
		s.Hits += v.Hits + v.CacheHits
		s.CacheHits += v.CacheHits
		s.Misses += v.Misses
		s.ICMPRouted += v.IcmpRouted
		s.EchoReplies += v.EchoReplies
		s.TooBig += v.TooBig
	}
	return s, nil
}

// Flows counts the connection table's entries (a walk of the tables: call it
// at scrape intervals, not per packet).
func (l *LB) Flows() (int, error) {
	n4, err := countEntries[bpf.XDPFlowKey4](l.flows4)
	if err != nil {
		return 0, err
	}
	n6, err := countEntries[bpf.XDPFlowKey](l.flows6)
	return n4 + n6, err
}

// countEntries walks a connection table whose keys are K.
func countEntries[K any](m *ebpf.Map) (int, error) {
	var k K
	var v bpf.XDPFlowState
	n := 0
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	return n, it.Err()
}

// MoveIPv4Flows moves the IPv4 entries an older program left in lb_flows
// (one table for both families, then) to lb_flows4, so an upgrade keeps
// every flow on its backend. Call it before the new program goes live; an
// entry the old program adds meanwhile rehashes, to the same backend while
// the service's table is unchanged.
func (l *LB) MoveIPv4Flows() (int, error) {
	type entry struct {
		k bpf.XDPFlowKey
		v bpf.XDPFlowState
	}
	var e entry
	var moving []entry
	it := l.flows6.Iterate()
	for it.Next(&e.k, &e.v) {
		if e.k.Family == 4 {
			moving = append(moving, e)
		}
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("read lb_flows: %w", err)
	}
	for i, e := range moving {
		if err := l.flows4.Update(key4Of(e.k), e.v, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			return i, fmt.Errorf("move flow to lb_flows4: %w", err)
		}
		if err := l.flows6.Delete(e.k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return i, fmt.Errorf("remove moved flow from lb_flows: %w", err)
		}
	}
	return len(moving), l.InvalidateFlowCache()
}

// key4Of is an IPv4 flow's key in lb_flows4 (key4_of in bpf/include/lb.h).
func key4Of(k bpf.XDPFlowKey) bpf.XDPFlowKey4 {
	return bpf.XDPFlowKey4{Src: binary.NativeEndian.Uint32(k.Src[:4]), Dst: binary.NativeEndian.Uint32(k.Dst[:4]),
		Sport: k.Sport, Dport: k.Dport, Proto: k.Proto}
}
