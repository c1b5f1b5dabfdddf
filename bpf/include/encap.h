/* encap.h: moving the L2 header to make or take room for an outer IP header,
 * and the outer source addresses of IPIP / IP6IP6. No maps: decap.c uses it too. */
#ifndef SLUICE_ENCAP_H
#define SLUICE_ENCAP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "consts.h"
#include "structs.h"
#include "csum.h"
#include "eth.h"

#define IP_DF 0x4000
#define MAX_L2_LEN (ETH_HLEN + MAX_VLAN_DEPTH * 4)

/* l3_at returns the L3 header after l2_len bytes if len bytes of it are in
 * the packet, else 0. One pointer, bounded and checked in one place, so the
 * verifier knows every access through it is in range. */
static __always_inline void *l3_at(struct xdp_md *ctx, __u32 l2_len, __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *l3;

	barrier_var(l2_len);
	if (l2_len > MAX_L2_LEN)
		return 0;
	l3 = data + l2_len;
	if (l3 + len > data_end)
		return 0;
	return l3;
}

#define LD(t, p, off) (*(const t *)((const void *)(p) + (off)))
#define ST(t, p, off, v) (*(t *)((void *)(p) + (off)) = (v))

/* copy_l2 moves the l2_len bytes at from to to, in words read before any is
 * written (the two may overlap). Returns -1 when either is outside the
 * packet. */
static __always_inline int copy_l2(void *to, void *from, __u16 l2_len, void *data_end)
{
	__u64 w0, w1;
	__u32 w2;
	__u16 w3;

	switch (l2_len) {
	case ETH_HLEN: /* 8 + 4 + 2 */
		if (from + ETH_HLEN > data_end || to + ETH_HLEN > data_end)
			return -1;
		w0 = LD(__u64, from, 0), w2 = LD(__u32, from, 8), w3 = LD(__u16, from, 12);
		ST(__u64, to, 0, w0), ST(__u32, to, 8, w2), ST(__u16, to, 12, w3);
		return 0;
	case ETH_HLEN + 4: /* 8 + 8 + 2 */
		if (from + ETH_HLEN + 4 > data_end || to + ETH_HLEN + 4 > data_end)
			return -1;
		w0 = LD(__u64, from, 0), w1 = LD(__u64, from, 8), w3 = LD(__u16, from, 16);
		ST(__u64, to, 0, w0), ST(__u64, to, 8, w1), ST(__u16, to, 16, w3);
		return 0;
	case ETH_HLEN + 8: /* 8 + 8 + 4 + 2 */
		if (from + ETH_HLEN + 8 > data_end || to + ETH_HLEN + 8 > data_end)
			return -1;
		w0 = LD(__u64, from, 0), w1 = LD(__u64, from, 8), w2 = LD(__u32, from, 16), w3 = LD(__u16, from, 20);
		ST(__u64, to, 0, w0), ST(__u64, to, 8, w1), ST(__u32, to, 16, w2), ST(__u16, to, 20, w3);
		return 0;
	}
	return -1;
}

/* push_outer makes room for delta bytes of outer header between the L2
 * header (VLAN tags included) and the L3 header. Every packet pointer taken
 * before is invalid afterwards. */
static __always_inline int push_outer(struct xdp_md *ctx, __u16 l2_len, int delta)
{
	void *data, *data_end;

	if (bpf_xdp_adjust_head(ctx, -delta))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	return copy_l2(data, data + delta, l2_len, data_end);
}

/* pop_outer removes the delta bytes of outer header after the L2 header. */
static __always_inline int pop_outer(struct xdp_md *ctx, __u16 l2_len, int delta)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (copy_l2(data + delta, data, l2_len, data_end))
		return -1;
	return bpf_xdp_adjust_head(ctx, delta);
}

/* encap_src4 is the outer IPv4 source: the configured range with the flow
 * hash in its host bits (so the backends' RSS spreads the flows), or the VIP
 * when no range is set. */
static __always_inline __be32 encap_src4(const struct lb_settings *cfg, __u32 hash, __be32 vip)
{
	__u32 base, host;

	if (!cfg)
		return vip;
	__builtin_memcpy(&base, cfg->encap_src4, 4);
	if (!base)
		return vip;
	if (cfg->encap_src4_bits >= 32)
		return base;
	host = cfg->encap_src4_bits ? (1u << (32 - cfg->encap_src4_bits)) - 1 : 0xffffffff;
	return bpf_htonl((bpf_ntohl(base) & ~host) | (hash & host));
}

/* encap_src6 fills the outer IPv6 source likewise; the hash fills at most the last 32 bits. */
static __always_inline void encap_src6(const struct lb_settings *cfg, __u32 hash, const __u8 *vip, __u8 *out)
{
	__u32 last, host;
	__u8 bits;
	int i, any = 0;

	if (cfg) {
#pragma unroll
		for (i = 0; i < 16; i++)
			any |= cfg->encap_src6[i];
	}
	if (!any) {
		__builtin_memcpy(out, vip, 16);
		return;
	}
	__builtin_memcpy(out, cfg->encap_src6, 16);
	bits = cfg->encap_src6_bits;
	if (bits >= 128)
		return;
	host = bits <= 96 ? 0xffffffff : (1u << (128 - bits)) - 1;
	__builtin_memcpy(&last, out + 12, 4);
	last = bpf_htonl((bpf_ntohl(last) & ~host) | (hash & host));
	__builtin_memcpy(out + 12, &last, 4);
}

#endif /* SLUICE_ENCAP_H */
