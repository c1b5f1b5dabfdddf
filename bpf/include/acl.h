/* acl.h: the ACL stage: source address → lists → policy verdict. */
#ifndef SLUICE_ACL_H
#define SLUICE_ACL_H

#include "parse.h"

/* acl_bucket is the host bucket of an IPv4 address (host order); maps/aclindex.go
 * places hosts with the same function. */
static __always_inline __u32 acl_bucket(__u32 addr)
{
	return (addr * FIB_HASH_MUL) >> (32 - ACL_BUCKET_BITS);
}

/* acl_lookup_tries returns the lists holding the longest stored prefix that
 * contains the source: the host hash first, then the trie. */
static __always_inline __u64 acl_lookup_tries(struct pkt *p)
{
	__u64 *lists = 0;

	if (p->ip4) {
		struct acl_v4_host_key hk;
		struct acl_v4_key k = { .prefixlen = 32 };

		__builtin_memcpy(hk.addr, &p->ip4->saddr, sizeof(hk.addr));
		lists = bpf_map_lookup_elem(&acl_v4_host, &hk);
		if (lists)
			return *lists;
		__builtin_memcpy(k.addr, &p->ip4->saddr, sizeof(k.addr));
		lists = bpf_map_lookup_elem(&acl_v4, &k);
	} else if (p->ip6) {
		struct acl_v6_host_key hk;
		struct acl_v6_key k = { .prefixlen = 128 };

		__builtin_memcpy(hk.addr, &p->ip6->saddr, sizeof(hk.addr));
		lists = bpf_map_lookup_elem(&acl_v6_host, &hk);
		if (lists)
			return *lists;
		__builtin_memcpy(k.addr, &p->ip6->saddr, sizeof(k.addr));
		lists = bpf_map_lookup_elem(&acl_v6, &k);
	}
	return lists ? *lists : 0;
}

/* acl_lookup_v4 answers an IPv4 source from the index, array lookups only:
 * the /24's slot, the host bucket when the /24 holds hosts, the class's
 * mask. A slot that says SLOW (a /25../31 in the /24, a host that found no
 * bucket slot, an index not built yet) hands the lookup to the tries. */
static __always_inline __u64 acl_lookup_v4(struct pkt *p)
{
	__u32 src = bpf_ntohl(p->ip4->saddr), key = src >> 16, slot, cls, b;
	struct acl_v4_bucket *bucket;
	struct acl_v4_block *block;
	__u64 *lists;
	int i;

	block = bpf_map_lookup_elem(&acl_v4_index, &key);
	if (!block)
		return acl_lookup_tries(p);
	slot = block->slot[(src >> 8) & 0xff];
	cls = slot & ACL_SLOT_CLASS;
	if (cls == ACL_SLOT_SLOW)
		return acl_lookup_tries(p);
	if (slot & ACL_SLOT_HOSTS) {
		b = acl_bucket(src);
		bucket = bpf_map_lookup_elem(&acl_v4_hosts, &b);
		if (bucket) {
			/* Hosts never move between slots, and a free slot
			 * ends nothing: every slot is read. */
#pragma unroll
			for (i = 0; i < ACL_BUCKET_SLOTS; i++) {
				__u64 h = bucket->host[i];

				if ((__u32)h == p->ip4->saddr && (h >> 32)) {
					cls = h >> 32;
					break;
				}
			}
		}
	}
	lists = bpf_map_lookup_elem(&acl_classes, &cls);
	return lists ? *lists : acl_lookup_tries(p);
}

/* acl_lookup returns the bitmask of every list holding a prefix that
 * contains the source (the union rule). */
static __always_inline __u64 acl_lookup(struct pkt *p)
{
	if (p->ip4)
		return acl_lookup_v4(p);
	return acl_lookup_tries(p);
}

/* acl_stage drops what the policy denies and returns CONTINUE for the rest.
 * Non-IP frames (ARP, LLDP) never reach the lists. */
static __always_inline int acl_stage(struct xdp_md *ctx, struct pkt *p)
{
	__u32 zero = 0;
	struct acl_policy *cfg;
	__u64 lists, deny, allow;

	if (!p->ip4 && !p->ip6)
		return CONTINUE;
	cfg = bpf_map_lookup_elem(&acl_config, &zero);
	if (!cfg)
		return CONTINUE;

	lists = acl_lookup(p);
	if (lists & PROTECT_BIT)
		return CONTINUE;
	deny = lists & cfg->deny_lists;
	allow = lists & cfg->allow_lists;

	if (cfg->mode == POLICY_ALLOW) {
		if (deny) {
			count_lists(ctx, deny);
			return drop(ctx, DROP_ACL_DENY);
		}
		if (!allow && !p->is_nd)
			return drop(ctx, DROP_ACL_NOT_ALLOWED);
		return CONTINUE;
	}
	if (deny && !allow) {
		count_lists(ctx, deny);
		return drop(ctx, DROP_ACL_DENY);
	}
	return CONTINUE;
}

#endif /* SLUICE_ACL_H */
