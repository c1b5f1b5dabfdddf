/* parse.h: bounds-checked parsing of Ethernet, VLAN, IPv4 and IPv6 headers. */
#ifndef SLUICE_PARSE_H
#define SLUICE_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_endian.h>
#include "consts.h"
#include "eth.h"
#include "stats.h"

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define IPV6_FRAG_OFFSET 0xfff8

/* ICMPv6 neighbour discovery types (RFC 4861): router solicitation .. redirect. */
#define ND_FIRST_TYPE 133
#define ND_LAST_TYPE 137

struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

struct ipv6_ext_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

/* What the stages after parsing need to know of a packet. */
struct pkt {
	void *data;
	void *data_end;
	__u16 l3_proto;  /* ETH_P_IP, ETH_P_IPV6 or another ethertype, host order */
	__u8 l4_proto;   /* IPPROTO_*; 0 when unknown */
	__u8 l4_known;   /* 1 when l4 points at the L4 header (not a later fragment) */
	__u8 is_nd;      /* IPv6 neighbour discovery (ICMPv6 133..137) */
	__u16 l2_len;    /* Ethernet header and VLAN tags: 14, 18 or 22 */
	struct iphdr *ip4;
	struct ipv6hdr *ip6;
	void *l4;
};

static __always_inline int parse_ipv6_ext(struct xdp_md *ctx, struct pkt *p, void *cursor)
{
	__u8 nh = p->ip6->nexthdr;
	int i;

#pragma unroll
	for (i = 0; i < MAX_IPV6_EXT_HDRS; i++) {
		struct ipv6_ext_hdr *eh = cursor;

		switch (nh) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			if ((void *)(eh + 1) > p->data_end)
				return drop(ctx, DROP_MALFORMED);
			nh = eh->nexthdr;
			cursor += (eh->hdrlen + 1) * 8;
			break;
		case IPPROTO_AH:
			if ((void *)(eh + 1) > p->data_end)
				return drop(ctx, DROP_MALFORMED);
			nh = eh->nexthdr;
			cursor += (eh->hdrlen + 2) * 4;
			break;
		case IPPROTO_FRAGMENT: {
			struct ipv6_frag_hdr *fh = cursor;

			if ((void *)(fh + 1) > p->data_end)
				return drop(ctx, DROP_MALFORMED);
			nh = fh->nexthdr;
			cursor += sizeof(*fh);
			if (fh->frag_off & bpf_htons(IPV6_FRAG_OFFSET)) {
				/* A later fragment carries no L4 header. */
				p->l4_proto = nh;
				return CONTINUE;
			}
			break;
		}
		default:
			p->l4_proto = nh;
			p->l4 = cursor;
			p->l4_known = 1;
			return CONTINUE;
		}
		if (cursor > p->data_end)
			return drop(ctx, DROP_MALFORMED);
	}
	/* Longer chains than MAX_IPV6_EXT_HDRS: the source is known, the L4 header is not. */
	return CONTINUE;
}

static __always_inline int parse_ipv6(struct xdp_md *ctx, struct pkt *p, void *cursor)
{
	struct ipv6hdr *ip6 = cursor;
	int ret;

	if ((void *)(ip6 + 1) > p->data_end)
		return drop(ctx, DROP_MALFORMED);
	if (ip6->version != 6)
		return drop(ctx, DROP_MALFORMED);
	if ((void *)(ip6 + 1) + bpf_ntohs(ip6->payload_len) > p->data_end)
		return drop(ctx, DROP_MALFORMED);
	p->ip6 = ip6;

	ret = parse_ipv6_ext(ctx, p, ip6 + 1);
	if (ret != CONTINUE)
		return ret;
	if (p->l4_known && p->l4_proto == IPPROTO_ICMPV6) {
		struct icmp6hdr *icmp6 = p->l4;

		if ((void *)(icmp6 + 1) > p->data_end)
			return drop(ctx, DROP_MALFORMED);
		if (icmp6->icmp6_type >= ND_FIRST_TYPE &&
		    icmp6->icmp6_type <= ND_LAST_TYPE)
			p->is_nd = 1;
	}
	return CONTINUE;
}

static __always_inline int parse_ipv4(struct xdp_md *ctx, struct pkt *p, void *cursor)
{
	struct iphdr *ip = cursor;
	__u32 ihl, tot;

	if ((void *)(ip + 1) > p->data_end)
		return drop(ctx, DROP_MALFORMED);
	if (ip->version != 4)
		return drop(ctx, DROP_MALFORMED);
	ihl = ip->ihl * 4;
	tot = bpf_ntohs(ip->tot_len);
	if (ihl < sizeof(*ip) || tot < ihl)
		return drop(ctx, DROP_MALFORMED);
	if (cursor + tot > p->data_end)
		return drop(ctx, DROP_MALFORMED);
	p->ip4 = ip;
	p->l4_proto = ip->protocol;
	if (!(ip->frag_off & bpf_htons(IP_OFFSET))) {
		p->l4 = cursor + ihl;
		p->l4_known = 1;
	}
	return CONTINUE;
}

/* parse fills p from the packet and returns CONTINUE, or XDP_DROP for a malformed header. */
static __always_inline int parse(struct xdp_md *ctx, struct pkt *p)
{
	struct ethhdr *eth;
	void *cursor;
	__be16 proto;
	int i;

	p->data = (void *)(long)ctx->data;
	p->data_end = (void *)(long)ctx->data_end;
	eth = p->data;
	if ((void *)(eth + 1) > p->data_end)
		return drop(ctx, DROP_MALFORMED);
	proto = eth_proto(eth);
	cursor = eth + 1;

#pragma unroll
	for (i = 0; i < MAX_VLAN_DEPTH; i++) {
		struct vlan_hdr *vh = cursor;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > p->data_end)
			return drop(ctx, DROP_MALFORMED);
		proto = vh->encap_proto;
		cursor = vh + 1;
	}
	/* A third tag would hide the IP header from every stage: refuse it. */
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
		return drop(ctx, DROP_MALFORMED);

	p->l3_proto = bpf_ntohs(proto);
	p->l2_len = cursor - p->data;
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(ctx, p, cursor);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(ctx, p, cursor);
	return CONTINUE;
}

#endif /* SLUICE_PARSE_H */
