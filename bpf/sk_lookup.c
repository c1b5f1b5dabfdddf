//go:build ignore

/* sk_lookup.c: the L7 intercept. Attached to a network namespace, it runs on
 * every socket lookup for an arriving TCP connection (or UDP datagram) and
 * hands the lookups for an L7 endpoint (VIP:port) to the proxy's listener,
 * whatever address and port that listener is bound to. The accepted socket
 * keeps the destination the client dialled, so the proxy reads the VIP:port
 * from its local address. Everything else takes the normal lookup. */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "include/structs.h"

/* How many endpoints the program steers; the loader may change it before load. */
#ifndef MAX_STEER_ENDPOINTS
#define MAX_STEER_ENDPOINTS 16384
#endif

/* Slots for listeners: one per family and protocol is what Go needs today. */
#ifndef MAX_STEER_LISTENERS
#define MAX_STEER_LISTENERS 16
#endif

/* Endpoint (address, port in network order or 0 for every port, protocol,
 * family) → slot of its listener in steer_sockets. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct steer_key);
	__type(value, __u32);
	__uint(max_entries, MAX_STEER_ENDPOINTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} steer_endpoints SEC(".maps");

/* The proxy's listeners. A socket leaves the map when it is closed. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, MAX_STEER_LISTENERS);
} steer_sockets SEC(".maps");

/* Per-CPU so the hot path never contends on a cache line; one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct steer_stats);
	__uint(max_entries, 1);
} steer_counters SEC(".maps");

static __always_inline struct steer_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&steer_counters, &zero);
}

/* endpoint_key fills k with the lookup's destination, the exact port; it
 * returns 0, or -1 for a family the program does not steer. */
static __always_inline int endpoint_key(struct bpf_sk_lookup *ctx, struct steer_key *k)
{
	/* The context's addresses are __u32 words in network order. */
	__u32 a0, a1, a2, a3;

	switch (ctx->family) {
	case SL_AF_INET:
		a0 = ctx->local_ip4;
		__builtin_memcpy(&k->addr[0], &a0, 4);
		k->family = 4;
		break;
	case SL_AF_INET6:
		a0 = ctx->local_ip6[0];
		a1 = ctx->local_ip6[1];
		a2 = ctx->local_ip6[2];
		a3 = ctx->local_ip6[3];
		__builtin_memcpy(&k->addr[0], &a0, 4);
		__builtin_memcpy(&k->addr[4], &a1, 4);
		__builtin_memcpy(&k->addr[8], &a2, 4);
		__builtin_memcpy(&k->addr[12], &a3, 4);
		k->family = 6;
		break;
	default:
		return -1;
	}
	k->port = bpf_htons((__u16)ctx->local_port); /* local_port is in host order */
	k->proto = (__u8)ctx->protocol;
	return 0;
}

SEC("sk_lookup")
int sluice_sk_lookup(struct bpf_sk_lookup *ctx)
{
	struct steer_key k = {};
	struct steer_stats *st;
	struct bpf_sock *sk;
	__u32 *slot;
	long err;

	if (endpoint_key(ctx, &k) < 0)
		return SK_PASS;
	slot = bpf_map_lookup_elem(&steer_endpoints, &k);
	if (!slot) {
		k.port = 0; /* every port of the address */
		slot = bpf_map_lookup_elem(&steer_endpoints, &k);
		if (!slot)
			return SK_PASS;
	}

	st = stats();
	/* The lookup takes a reference on the socket that must be released
	 * on every path, whether or not the assignment succeeds. */
	sk = bpf_map_lookup_elem(&steer_sockets, slot);
	if (!sk) {
		if (st)
			st->no_socket++;
		return SK_PASS;
	}
	/* Fails on a family or protocol mismatch (a v6-only listener for an
	 * IPv4 lookup), or when an earlier program already chose a socket. */
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (st) {
		if (err)
			st->refused++;
		else
			st->steered++;
	}
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
