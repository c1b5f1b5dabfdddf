/* acl.h: the ACL stage: source address → lists → policy verdict. */
#ifndef SLUICE_ACL_H
#define SLUICE_ACL_H

#include "parse.h"

/* acl_lookup returns the lists holding the longest stored prefix that
 * contains the source: the host hash first, then the trie. */
static __always_inline __u64 acl_lookup(struct pkt *p)
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
