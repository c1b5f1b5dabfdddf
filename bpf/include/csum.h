/* csum.h: Internet checksums (RFC 1071) and their incremental update (RFC 1624). */
#ifndef SLUICE_CSUM_H
#define SLUICE_CSUM_H

#include <linux/types.h>

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/* ipv4_csum returns the checksum of a 20-byte IPv4 header whose check field
 * is 0; over a header with its checksum in place, 0 when that is right. */
static __always_inline __u16 ipv4_csum(const void *hdr)
{
	const __u16 *w = hdr;
	__u64 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < 10; i++)
		sum += w[i];
	return csum_fold(sum);
}

/* csum_add_pkt adds the 16-bit words of len bytes at start (len even, at most
 * 2 * max_words) to sum; it stops at data_end. */
#define CSUM_MAX_WORDS 64
static __always_inline __u64 csum_add_pkt(__u64 sum, const void *start, __u32 len, const void *data_end)
{
	int i;

	for (i = 0; i < CSUM_MAX_WORDS; i++) {
		const __u16 *w = start + i * 2;

		if ((__u32)i * 2 >= len || (const void *)(w + 1) > data_end)
			break;
		sum += *w;
	}
	return sum;
}

/* csum_replace2 updates the checksum at sum for one 16-bit word changing from
 * old to new (RFC 1624, eqn. 3). */
static __always_inline void csum_replace2(__u16 *sum, __u16 old, __u16 new)
{
	__u32 s = (__u16)~*sum + (__u16)~old + new;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	*sum = ~s;
}

#endif /* SLUICE_CSUM_H */
