/* icmp.h: ICMP answered at the NIC: echo replies for VIPs, and the
 * "fragmentation needed" / "packet too big" errors that keep path-MTU
 * discovery working through the encapsulation. */
#ifndef SLUICE_ICMP_H
#define SLUICE_ICMP_H

#include <linux/icmpv6.h>
#include "parse.h"
#include "csum.h"
#include "encap.h"
#include "maps.h"

/* The ICMP header and types of <linux/icmp.h>, written out: that header
 * pulls in <linux/if.h> and through it the C library's <sys/socket.h>,
 * which a BPF target cannot include (it asks for gnu/stubs-32.h). */
struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	union {
		struct {
			__be16 id;
			__be16 sequence;
		} echo;
		__be32 gateway;
		struct {
			__be16 __unused;
			__be16 mtu;
		} frag;
		__u8 reserved[4];
	} un;
};

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMP_FRAG_NEEDED 4

#define ICMP6_MIN_MTU 1280
#define FLOW_STATS(field)                                                   \
	do {                                                                    \
		__u32 zero = 0;                                                 \
		struct lb_flow_stats *fs = bpf_map_lookup_elem(&stats_flows, &zero); \
		if (fs)                                                         \
			fs->field++;                                            \
	} while (0)

/* echo_reply turns an ICMP / ICMPv6 echo request to a VIP into its reply in
 * place and returns XDP_TX, or CONTINUE for anything else. It answers only
 * a request whole in one packet with a plain IP header: not a fragment
 * (its reply would be cut short), not IPv4 options or IPv6 extension
 * headers (a reply would have to reverse them), and not an IPv4 header
 * whose checksum is wrong (the reply's, updated from it, would be too);
 * the stack gets the others, as it gets any packet for a VIP it does not
 * own, and drops what is malformed. */
static __always_inline int echo_reply(struct pkt *p)
{
	struct ethhdr *eth = p->data;
	struct svc_key vip = {};

	if (!p->l4_known || (void *)(eth + 1) > p->data_end)
		return CONTINUE;
	if (p->ip4 && p->l4_proto == IPPROTO_ICMP) {
		struct icmphdr *icmp = p->l4;
		struct iphdr *ip = p->ip4;
		__u16 old, new;
		__be32 a;

		if ((void *)(icmp + 1) > p->data_end || icmp->type != ICMP_ECHO || icmp->code)
			return CONTINUE;
		if (ip->ihl != 5 || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) || ipv4_csum(ip))
			return CONTINUE;
		__builtin_memcpy(vip.addr, &ip->daddr, 4);
		vip.family = 4;
		if (!bpf_map_lookup_elem(&lb_vips, &vip))
			return CONTINUE;
		old = *(__u16 *)icmp;
		icmp->type = ICMP_ECHOREPLY;
		new = *(__u16 *)icmp;
		csum_replace2(&icmp->checksum, old, new);
		old = *(__u16 *)&ip->ttl;
		ip->ttl = 64;
		new = *(__u16 *)&ip->ttl;
		csum_replace2(&ip->check, old, new);
		a = ip->saddr; /* swapping the addresses keeps both checksums */
		ip->saddr = ip->daddr;
		ip->daddr = a;
	} else if (p->ip6 && p->l4_proto == IPPROTO_ICMPV6) {
		struct icmp6hdr *icmp6 = p->l4;
		struct ipv6hdr *ip6 = p->ip6;
		struct in6_addr a;
		__u16 old, new;

		if ((void *)(icmp6 + 1) > p->data_end || icmp6->icmp6_type != ICMPV6_ECHO_REQUEST || icmp6->icmp6_code)
			return CONTINUE;
		if (ip6->nexthdr != IPPROTO_ICMPV6)
			return CONTINUE;
		__builtin_memcpy(vip.addr, &ip6->daddr, 16);
		vip.family = 6;
		if (!bpf_map_lookup_elem(&lb_vips, &vip))
			return CONTINUE;
		old = *(__u16 *)icmp6;
		icmp6->icmp6_type = ICMPV6_ECHO_REPLY;
		new = *(__u16 *)icmp6;
		csum_replace2(&icmp6->icmp6_cksum, old, new);
		ip6->hop_limit = 64;
		a = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = a;
	} else {
		return CONTINUE;
	}
	mac_swap(eth);
	FLOW_STATS(echo_replies);
	return XDP_TX;
}

/* too_big4 answers a DF packet that would exceed the egress MTU once
 * encapsulated with ICMP "fragmentation needed" (RFC 1191) quoting its IP
 * header and 8 bytes, sent back where it came from. */
static __always_inline int too_big4(struct xdp_md *ctx, struct pkt *p, __u32 mtu)
{
	struct ethhdr *eth = p->data;
	struct iphdr *ip = p->ip4;
	__u16 l2_len = p->l2_len;
	__u32 ihl = ip->ihl * 4, quote;
	__be32 client = ip->saddr, vip = ip->daddr;
	struct icmphdr *icmp;
	void *data_end;
	__u64 sum;

	if ((void *)(eth + 1) > p->data_end || l2_len > MAX_L2_LEN || ihl > 60)
		return drop(ctx, DROP_LB_TOO_BIG);
	mac_swap(eth);
	quote = ihl + 8;
	if (bpf_xdp_adjust_tail(ctx, (int)(l2_len + quote) - (int)(p->data_end - p->data)))
		return drop(ctx, DROP_LB_ENCAP);
	if (push_outer(ctx, l2_len, sizeof(struct iphdr) + sizeof(struct icmphdr)))
		return drop(ctx, DROP_LB_ENCAP);
	ip = l3_at(ctx, l2_len, sizeof(*ip) + sizeof(*icmp));
	if (!ip)
		return drop(ctx, DROP_LB_ENCAP);
	icmp = (void *)(ip + 1);
	data_end = (void *)(long)ctx->data_end;
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(sizeof(*ip) + sizeof(*icmp) + quote);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = 64;
	ip->protocol = IPPROTO_ICMP;
	ip->saddr = vip;
	ip->daddr = client;
	ip->check = 0;
	ip->check = ipv4_csum(ip);
	icmp->type = ICMP_DEST_UNREACH;
	icmp->code = ICMP_FRAG_NEEDED;
	icmp->checksum = 0;
	icmp->un.frag.__unused = 0;
	icmp->un.frag.mtu = bpf_htons(mtu);
	sum = csum_add_pkt(0, icmp, sizeof(*icmp) + quote, data_end);
	icmp->checksum = csum_fold(sum);
	FLOW_STATS(too_big);
	return XDP_TX;
}

/* too_big6 is too_big4 for IPv6: ICMPv6 "packet too big" (RFC 4443 / 8201)
 * quoting the IPv6 header and 8 bytes. */
static __always_inline int too_big6(struct xdp_md *ctx, struct pkt *p, __u32 mtu)
{
	struct ethhdr *eth = p->data;
	struct ipv6hdr *ip6 = p->ip6;
	__u16 l2_len = p->l2_len;
	const __u32 quote = sizeof(struct ipv6hdr) + 8;
	struct in6_addr client = ip6->saddr, vip = ip6->daddr;
	struct icmp6hdr *icmp6;
	void *data_end;
	__u64 sum;

	if ((void *)(eth + 1) > p->data_end || l2_len > MAX_L2_LEN)
		return drop(ctx, DROP_LB_TOO_BIG);
	mac_swap(eth);
	if (mtu < ICMP6_MIN_MTU)
		mtu = ICMP6_MIN_MTU;
	if (bpf_xdp_adjust_tail(ctx, (int)(l2_len + quote) - (int)(p->data_end - p->data)))
		return drop(ctx, DROP_LB_ENCAP);
	if (push_outer(ctx, l2_len, sizeof(struct ipv6hdr) + sizeof(struct icmp6hdr)))
		return drop(ctx, DROP_LB_ENCAP);
	ip6 = l3_at(ctx, l2_len, sizeof(*ip6) + sizeof(*icmp6));
	if (!ip6)
		return drop(ctx, DROP_LB_ENCAP);
	icmp6 = (void *)(ip6 + 1);
	data_end = (void *)(long)ctx->data_end;
	*(__be32 *)ip6 = bpf_htonl(6 << 28);
	ip6->payload_len = bpf_htons(sizeof(*icmp6) + quote);
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = 64;
	ip6->saddr = vip;
	ip6->daddr = client;
	icmp6->icmp6_type = ICMPV6_PKT_TOOBIG;
	icmp6->icmp6_code = 0;
	icmp6->icmp6_cksum = 0;
	icmp6->icmp6_mtu = bpf_htonl(mtu);
	/* The pseudo-header: both addresses, the length, the next header. */
	sum = csum_add_pkt(0, &ip6->saddr, 32, data_end);
	sum += bpf_htons(sizeof(*icmp6) + quote) + bpf_htons(IPPROTO_ICMPV6);
	sum = csum_add_pkt(sum, icmp6, sizeof(*icmp6) + quote, data_end);
	icmp6->icmp6_cksum = csum_fold(sum);
	FLOW_STATS(too_big);
	return XDP_TX;
}

#endif /* SLUICE_ICMP_H */
