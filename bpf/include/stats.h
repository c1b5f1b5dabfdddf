/* stats.h: per-CPU counters for verdicts, drop reasons and lists. */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include "maps.h"

static __always_inline void counter_add(struct counter *c, __u64 bytes)
{
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

static __always_inline __u64 pkt_len(struct xdp_md *ctx)
{
	return ctx->data_end - ctx->data;
}

static __always_inline void count_verdict(struct xdp_md *ctx, int verdict)
{
	__u32 slot = ctx->ingress_ifindex & (MAX_IFINDEX - 1);
	struct iface_stats *s = bpf_map_lookup_elem(&stats_iface, &slot);
	__u32 v = verdict;

	/* Opaque to the compiler, so the bound checked is the index used. */
	barrier_var(v);
	if (s && v < VERDICT_MAX)
		counter_add(&s->verdict[v], pkt_len(ctx));
}

/* drop counts the reason and returns XDP_DROP, so a stage can `return drop(...)`. */
static __always_inline int drop(struct xdp_md *ctx, __u32 reason)
{
	counter_add(bpf_map_lookup_elem(&stats_drop, &reason), pkt_len(ctx));
	return XDP_DROP;
}

/* count_lists attributes a drop to every list whose bit is set in mask. */
static __always_inline void count_lists(struct xdp_md *ctx, __u64 mask)
{
	__u64 bytes = pkt_len(ctx);
	__u32 i;

	for (i = 0; i < MAX_LISTS; i++) {
		if (!(mask >> i))
			break;
		if ((mask >> i) & 1)
			counter_add(bpf_map_lookup_elem(&stats_list, &i), bytes);
	}
}

#endif /* SLUICE_STATS_H */
