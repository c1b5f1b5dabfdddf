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

#endif /* SLUICE_MAPS_H */
