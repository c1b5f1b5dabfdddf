/* bench.h: what the benchmark programs share. */
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

#include "../include/encap.h"

/* strip_ipip4 takes a dsr-ipip tunnel's outer IPv4 header (no options) off
 * a frame whose IPv4 header, after a plain Ethernet header, is ip, as the
 * backends' decap does, and returns the inner IPv4 header, with *data_end
 * reloaded (the Ethernet header is then at ctx->data again); ip itself when
 * the frame is no tunnel; NULL when it is malformed or cannot be stripped. */
static __always_inline struct iphdr *strip_ipip4(struct xdp_md *ctx, struct iphdr *ip, void **data_end)
{
	struct ethhdr *eth;

	if (ip->protocol != IPPROTO_IPIP)
		return ip;
	if (ip->ihl != 5 || pop_outer(ctx, ETH_HLEN, sizeof(*ip)))
		return NULL;
	eth = (void *)(long)ctx->data;
	*data_end = (void *)(long)ctx->data_end;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > *data_end)
		return NULL;
	return ip;
}

#endif
