//go:build ignore

/* decap.c: the backend side of dsr-ipip. Strips the outer IPv4 (IPIP) or
 * IPv6 (IP6IP6) header of packets whose inner destination is a local VIP, so
 * a backend needs no ipip module; the stack then sees the client's packet to
 * the VIP, which the backend holds on its loopback. Everything else passes
 * untouched. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "include/consts.h"
#include "include/structs.h"
#include "include/encap.h"

/* The local VIPs (svc_key with port and proto 0); empty: every inner destination. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct svc_key);
	__type(value, __u32);
	__uint(max_entries, MAX_SERVICES);
} decap_vips SEC(".maps");

/* Per-CPU: [DECAP_STRIPPED] packets decapsulated, [DECAP_NOT_LOCAL] tunnelled
 * packets for another address (passed as they are). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(max_entries, DECAP_STATS_MAX);
} decap_stats SEC(".maps");

static __always_inline void count(__u32 what, struct xdp_md *ctx)
{
	struct counter *c = bpf_map_lookup_elem(&decap_stats, &what);

	if (c) {
		c->packets++;
		c->bytes += ctx->data_end - ctx->data;
	}
}

/* is_local says whether decap_vips holds addr, or is empty (probed with the zero key). */
static __always_inline int is_local(const void *addr, int len, __u8 family)
{
	struct svc_key k = {};
	__u32 *any;

	__builtin_memcpy(k.addr, addr, len == 4 ? 4 : 16);
	k.family = family;
	if (bpf_map_lookup_elem(&decap_vips, &k))
		return 1;
	__builtin_memset(&k, 0, sizeof(k));
	any = bpf_map_lookup_elem(&decap_vips, &k);
	return any != 0;
}

SEC("xdp")
int sluice_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *cursor;
	__be16 proto;
	__u16 l2_len;
	int i;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	proto = eth_proto(eth);
	cursor = eth + 1;
#pragma unroll
	for (i = 0; i < MAX_VLAN_DEPTH; i++) {
		struct { __be16 tci; __be16 proto; } *vh = cursor;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > data_end)
			return XDP_PASS;
		proto = vh->proto;
		cursor = vh + 1;
	}
	l2_len = cursor - data;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *out = cursor, *in = cursor + sizeof(*out);

		if ((void *)(in + 1) > data_end || out->version != 4 || out->ihl != 5 ||
		    out->protocol != IPPROTO_IPIP || in->version != 4)
			return XDP_PASS;
		/* A fragmented outer packet is left to the stack to reassemble,
		 * and one whose header checksum is wrong to the stack to drop. */
		if ((out->frag_off & bpf_htons(0x2000 | 0x1fff)) || ipv4_csum(out))
			return XDP_PASS;
		if (!is_local(&in->daddr, 4, 4)) {
			count(DECAP_NOT_LOCAL, ctx);
			return XDP_PASS;
		}
		if (pop_outer(ctx, l2_len, sizeof(*out)))
			return XDP_PASS;
		count(DECAP_STRIPPED, ctx);
		return XDP_PASS;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *out = cursor, *in = cursor + sizeof(*out);

		if ((void *)(in + 1) > data_end || out->version != 6 || out->nexthdr != IPPROTO_IPV6 ||
		    in->version != 6)
			return XDP_PASS;
		if (!is_local(&in->daddr, 16, 6)) {
			count(DECAP_NOT_LOCAL, ctx);
			return XDP_PASS;
		}
		if (pop_outer(ctx, l2_len, sizeof(*out)))
			return XDP_PASS;
		count(DECAP_STRIPPED, ctx);
		return XDP_PASS;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
