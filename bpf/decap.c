//go:build ignore

/* decap.c: the backend side of dsr-ipip. Strips the outer IPv4 (IPIP) or
 * IPv6 (IP6IP6) header of packets whose inner destination is a local VIP, so
 * a backend needs no ipip module; the stack then sees the client's packet to
 * the VIP, which the backend holds on its loopback. Everything else passes
 * untouched.
 *
 * The VIPs are the ones decap_vips lists; when it holds the zero key
 * instead, every inner destination the kernel would not route on to
 * another host (see routed_on): a local address, or any when the ingress
 * interface does not forward. So a backend that is also a router never
 * turns a tunnel into a packet for its other networks. */
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

/* The local VIPs (svc_key with port and proto 0); the zero key: every inner
 * destination not routed on (routed_on); empty: none. */
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

const enum decap_counter *unused_decap_counter __attribute__((unused));

static __always_inline void count(__u32 what, struct xdp_md *ctx)
{
	struct counter *c = bpf_map_lookup_elem(&decap_stats, &what);

	if (c) {
		c->packets++;
		c->bytes += ctx->data_end - ctx->data;
	}
}

/* routed_on says whether the kernel would route the inner packet on to
 * another host: its FIB has a unicast route for it, reachable or not yet
 * resolved, and the ingress interface forwards. A local destination, no
 * route, or forwarding off all mean the stack takes the packet itself or
 * drops it. A lookup the helper refuses (no such interface) counts as not
 * routed: the tunnel is stripped, as it is without the check. */
static __always_inline int routed_on(struct xdp_md *ctx, __u8 family, const void *src, const void *dst,
				     __u16 tot_len, __u8 tos)
{
	struct bpf_fib_lookup p = {};

	p.ifindex = ctx->ingress_ifindex;
	p.tot_len = tot_len;
	if (family == 4) {
		p.family = SL_AF_INET;
		p.tos = tos;
		__builtin_memcpy(&p.ipv4_src, src, 4);
		__builtin_memcpy(&p.ipv4_dst, dst, 4);
	} else {
		p.family = SL_AF_INET6;
		__builtin_memcpy(p.ipv6_src, src, 16);
		__builtin_memcpy(p.ipv6_dst, dst, 16);
	}
	switch (bpf_fib_lookup(ctx, &p, sizeof(p), 0)) {
	case BPF_FIB_LKUP_RET_SUCCESS:
	case BPF_FIB_LKUP_RET_NO_NEIGH:
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return 1;
	}
	return 0;
}

/* is_local says whether the inner packet is for this host: decap_vips
 * holds its destination, or holds the zero key and the kernel would not
 * route the packet on (routed_on). */
static __always_inline int is_local(struct xdp_md *ctx, const void *src, const void *dst, int len, __u16 tot_len,
				    __u8 tos)
{
	struct svc_key k = {};

	__builtin_memcpy(k.addr, dst, len == 4 ? 4 : 16);
	k.family = len == 4 ? 4 : 6;
	if (bpf_map_lookup_elem(&decap_vips, &k))
		return 1;
	__builtin_memset(&k, 0, sizeof(k));
	if (!bpf_map_lookup_elem(&decap_vips, &k))
		return 0;
	return !routed_on(ctx, len == 4 ? 4 : 6, src, dst, tot_len, tos);
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
		if (!is_local(ctx, &in->saddr, &in->daddr, 4, bpf_ntohs(in->tot_len), in->tos)) {
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
		if (!is_local(ctx, &in->saddr, &in->daddr, 16, sizeof(*in) + bpf_ntohs(in->payload_len), 0)) {
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
