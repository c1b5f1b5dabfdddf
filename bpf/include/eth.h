/* eth.h: Ethernet header access in words. The kernel's ethhdr is packed, so
 * clang reads and writes its fields (and a memcpy through it) a byte at a
 * time: six loads and stores for a MAC, two and a shift for the ethertype.
 * On x86 the verifier takes unaligned packet access, and these helpers save
 * ~6 ns on a forwarded packet. No maps: decap.c uses it too. */
#ifndef SLUICE_ETH_H
#define SLUICE_ETH_H

#include <linux/types.h>
#include <linux/if_ether.h>

/* eth_proto is the frame's ethertype (network order). */
static __always_inline __be16 eth_proto(const struct ethhdr *eth)
{
	return *(const __be16 *)((const void *)eth + 2 * ETH_ALEN);
}

/* mac_copy copies the MAC address at from to to. */
static __always_inline void mac_copy(void *to, const void *from)
{
	*(__u32 *)to = *(const __u32 *)from;
	*(__u16 *)(to + 4) = *(const __u16 *)(from + 4);
}

/* mac_swap swaps the frame's source and destination. */
static __always_inline void mac_swap(struct ethhdr *eth)
{
	void *d = eth->h_dest, *s = eth->h_source;
	__u32 d0 = *(__u32 *)d, s0 = *(__u32 *)s;
	__u16 d1 = *(__u16 *)(d + 4), s1 = *(__u16 *)(s + 4);

	*(__u32 *)d = s0;
	*(__u16 *)(d + 4) = s1;
	*(__u32 *)s = d0;
	*(__u16 *)(s + 4) = d1;
}

#endif /* SLUICE_ETH_H */
