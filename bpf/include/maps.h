/* maps.h: every BPF map of the XDP program; Go reaches them through maps/. */
#ifndef SLUICE_MAPS_H
#define SLUICE_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"

/* Source prefix → bitmask of every list holding a prefix that contains it
 * (the union rule: maps/ keeps each entry's mask covering its ancestors). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct acl_v4_key);
	__type(value, __u64);
	__uint(max_entries, MAX_ACL_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} acl_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct acl_v6_key);
	__type(value, __u64);
	__uint(max_entries, MAX_ACL_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} acl_v6 SEC(".maps");

/* Host entries (/32, /128) live in hashes beside the tries: one hash lookup
 * answers a listed host, and the tries stay small and shallow for the
 * shorter prefixes. A host entry's mask already holds its covering lists. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct acl_v4_host_key);
	__type(value, __u64);
	__uint(max_entries, MAX_ACL_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} acl_v4_host SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct acl_v6_host_key);
	__type(value, __u64);
	__uint(max_entries, MAX_ACL_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} acl_v6_host SEC(".maps");

/* The IPv4 index (acl.h): arrays only, so the verifier inlines each lookup.
 * The tries and host hashes above still hold every entry; the index sends
 * a lookup there when a /24 does not fit it (ACL_SLOT_SLOW). Kernel memory:
 * 32 MiB of blocks (65536 × 512 B), 16 MiB of host buckets (2^18 × 64 B,
 * room for 1M hosts at half load), 256 KiB of classes, whatever the lists. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32); /* the top 16 bits of the address */
	__type(value, struct acl_v4_block);
	__uint(max_entries, ACL_V4_BLOCKS);
} acl_v4_index SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32); /* acl_bucket() of the address */
	__type(value, struct acl_v4_bucket);
	__uint(max_entries, ACL_BUCKETS);
} acl_v4_hosts SEC(".maps");

/* Class → bitmask of lists: the distinct masks are few, so slots name them. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, ACL_CLASSES);
} acl_classes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct acl_policy);
	__uint(max_entries, 1);
} acl_config SEC(".maps");

/* Per-CPU so the hot path never contends on a cache line. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct iface_stats);
	__uint(max_entries, MAX_IFINDEX);
} stats_iface SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(max_entries, DROP_REASON_MAX);
} stats_drop SEC(".maps");

/* Drops attributed to each list (index = list id). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(max_entries, MAX_LISTS);
} stats_list SEC(".maps");

/* (VIP, port, proto) → service. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct svc_key);
	__type(value, struct svc_info);
	__uint(max_entries, MAX_SERVICES);
} lb_services SEC(".maps");

/* Service id → the service (svc_entry), for connection-table hits, whose
 * entries name their service's id. maps/lb.go writes it with lb_services. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct svc_entry);
	__uint(max_entries, MAX_SERVICES);
} lb_svc_ids SEC(".maps");

/* VIPs, for ICMP echo at the NIC (value unused). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct svc_key);
	__type(value, __u32);
	__uint(max_entries, MAX_SERVICES);
} lb_vips SEC(".maps");

/* Bit vip_hash(addr) is set for every address in lb_vips (maps/lb.go keeps
 * it so): a clear bit sends a packet on without a hash lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, VIP_FILTER_WORDS);
} lb_vip_filter SEC(".maps");

/* Each service's Maglev table: slot → backend id. The daemon builds a new
 * table and swaps it into lb_maglev in one update, so a lookup sees the old
 * table or the new one, never a mix. */
struct maglev_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, DEFAULT_MAGLEV_SIZE);
	__uint(map_flags, BPF_F_INNER_MAP);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, MAX_SERVICES);
	__array(values, struct maglev_table);
} lb_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct backend_info);
	__uint(max_entries, MAX_BACKENDS);
} lb_backends SEC(".maps");

/* The connection table: lb_flows4 for IPv4 flows, lb_flows for IPv6 ones
 * (a key of 16 bytes, not 40, makes every IPv4 lookup cheaper, as Cilium
 * keeps ct4 and ct6 apart). Shared, not per-CPU: a flow whose packets move
 * to another CPU (an RSS table change, generic XDP, a restarted NIC queue)
 * must still find its backend, and the daemon reads one table a family.
 * LRU: under a flood of new flows the oldest idle ones go first, never the
 * table. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flow_key4);
	__type(value, struct flow_state);
	__uint(max_entries, MAX_FLOWS);
} lb_flows4 SEC(".maps");

/* Each CPU's flow cache: a direct-mapped copy of the connection-table
 * entries of the TCP flows it forwarded last, slot by the flow's
 * tunnel_hash. A lookup in lb_flows4 is a call into the kernel (hash, bucket
 * walk, memcmp, each returning through the CPU's return-stack mitigation):
 * a hit through the table costs 105-130 ns a packet in BenchmarkL4, one
 * through the cache 80. A flow that sends many packets in a row (a
 * download, a stream) pays the table's price once in FLOW_CACHE_REFRESH
 * packets, as Open vSwitch's exact-match cache spares its classifier; one
 * of many more flows than slots, interleaved, misses and pays a slot read
 * more. Per-CPU: no lock, no line shared between CPUs. UDP flows are not
 * cached: their idle timeout reads the clock and the table's seen_ns, and
 * many are one packet (DNS) or interleaved with many more: cached too, the
 * 16,384 cycling flows of the veth forwarding benchmark spent 34% of the
 * receiving CPU in the program, not 14%, for 14% in the table's bucket
 * walk, not 25% (perf, dsr-l2): the slots' reads and writes missed. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct flow_cache_entry);
	__uint(max_entries, FLOW_CACHE_SLOTS);
} lb_flow_cache SEC(".maps");

/* The flow caches' generation: an entry counts only while its gen is this.
 * maps/lb.go bumps it after every write of a backend or of the connection
 * table (InvalidateFlowCache says why those), so no CPU keeps sending a
 * flow where the table no longer does (a backend down and up again while
 * another CPU moved the flow). The datapath reads it before any other flow
 * state, so the gen an entry carries is never newer than what it copied. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} lb_flow_gen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flow_key);
	__type(value, struct flow_state);
	__uint(max_entries, MAX_FLOWS);
} lb_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_settings);
	__uint(max_entries, 1);
} lb_config SEC(".maps");

/* MAC and MTU of the interfaces, by ifindex slot (see MAX_IFINDEX). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_iface);
	__uint(max_entries, MAX_IFINDEX);
} lb_ifaces SEC(".maps");

/* Egress interfaces other than the ingress one, keyed by ifindex. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 64);
} lb_tx_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_counter);
	__uint(max_entries, MAX_SERVICES);
} stats_svc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_counter);
	__uint(max_entries, MAX_BACKENDS);
} stats_backend SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_flow_stats);
	__uint(max_entries, 1);
} stats_flows SEC(".maps");

#endif /* SLUICE_MAPS_H */
