/* lb.h: the L4 stage: service lookup, the connection table, Maglev, and
 * forwarding by IPIP / IP6IP6 encapsulation or L2 rewrite (direct server return). */
#ifndef SLUICE_LB_H
#define SLUICE_LB_H

#include <linux/icmpv6.h>
#include "parse.h"
#include "encap.h"
#include "icmp.h"

/* A UDP flow's seen_ns is refreshed when older than this, or than a quarter
 * of the idle timeout when that is shorter (seen_refresh). */
#define SEEN_REFRESH_NS 1000000000ULL
/* A UDP idle timeout at least this long is timed with the coarse clock. */
#define UDP_COARSE_TIMEOUT_NS 100000000ULL

/* Set by benchmarks that measure the connection table's own hit, with no
 * CPU's flow cache in front of it; the daemon never sets it. */
volatile __u8 lb_flow_cache_off;
/* lb_flow_cache's slots, a power of two: bpf.SetFlowCacheSlots sets both
 * before load. */
volatile const __u32 lb_flow_cache_slots = FLOW_CACHE_SLOTS;

static __always_inline __u32 ifindex_slot(__u32 ifindex)
{
	return ifindex & (MAX_IFINDEX - 1);
}

/* egress_iface is what the daemon recorded of the egress interface (its
 * MAC and MTU), NULL if nothing. Looked up once a packet: the tunnel reads
 * the MTU, and set_macs the MAC. */
static __always_inline const struct lb_iface *egress_iface(__u32 egress)
{
	__u32 slot = ifindex_slot(egress);

	return bpf_map_lookup_elem(&lb_ifaces, &slot);
}

/* set_macs addresses the frame to the next hop: the source is the egress
 * interface's MAC (ifc) when the daemon set one, otherwise the MAC the frame
 * came to. */
static __always_inline int set_macs(struct xdp_md *ctx, const __u8 *next_hop, const struct lb_iface *ifc)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;
	/* The MAC is the entry's first six bytes (the MTU follows). */
	if (ifc && (*(const __u64 *)ifc & 0xffffffffffffULL))
		mac_copy(eth->h_source, ifc->mac);
	else
		mac_copy(eth->h_source, eth->h_dest);
	mac_copy(eth->h_dest, next_hop);
	return 0;
}

/* send_to returns XDP_TX for the ingress interface and redirects through
 * lb_tx_ports for another. */
static __always_inline int send_to(struct xdp_md *ctx, __u32 egress)
{
	if (egress == ctx->ingress_ifindex)
		return XDP_TX;
	if (!bpf_map_lookup_elem(&lb_tx_ports, &egress))
		return drop(ctx, DROP_LB_NO_ROUTE);
	return bpf_redirect_map(&lb_tx_ports, egress, XDP_DROP);
}

static __always_inline __u32 rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

/* flow_hash is MurmurHash3 (x86, 32-bit) over the words of the flow key,
 * read little-endian: the source only for client affinity, else all ten.
 * l4.FlowHash computes the same, so two load balancers, and the tools,
 * agree on every flow's backend. */
static __always_inline __u32 murmur_step(__u32 h, __u32 x)
{
	x *= 0xcc9e2d51;
	x = rotl32(x, 15);
	x *= 0x1b873593;
	h ^= x;
	h = rotl32(h, 13);
	return h * 5 + 0xe6546b64;
}

/* murmur_zero is murmur_step(h, 0): a zero word only stirs h. */
static __always_inline __u32 murmur_zero(__u32 h)
{
	return rotl32(h, 13) * 5 + 0xe6546b64;
}

static __always_inline __u32 flow_hash(const struct flow_key *k, __u8 mode)
{
	const __u32 *w = (const void *)k;
	__u32 h = 0, n = 4;
	int i;

	if (k->family == 4) {
		/* An IPv4 address is one word and three zero ones (see
		 * svc_key), whose steps are murmur_zero's: the same hash,
		 * for a third of the multiplications. */
		h = murmur_zero(murmur_zero(murmur_zero(murmur_step(h, w[0]))));
		if (mode != LB_HASH_SRC_IP) {
			h = murmur_zero(murmur_zero(murmur_zero(murmur_step(h, w[4]))));
			h = murmur_step(murmur_step(h, w[8]), w[9]);
			n = sizeof(*k) / 4;
		}
	} else {
#pragma unroll
		for (i = 0; i < 4; i++)
			h = murmur_step(h, w[i]);
		if (mode != LB_HASH_SRC_IP) {
#pragma unroll
			for (i = 4; i < sizeof(*k) / 4; i++)
				h = murmur_step(h, w[i]);
			n = sizeof(*k) / 4;
		}
	}
	h ^= n * 4;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* tunnel_hash picks a flow's tunnel source (and IP6IP6 flow label), so the
 * backends' RSS, which hashes the outer header, spreads the flows over
 * their queues: the key's words folded, multiplied and mixed, a fraction of
 * flow_hash's work on every tunnelled packet (Katran derives its outer
 * source from the client's address and port alike). Its low bits are the
 * ones used. l4.TunnelHash computes the same. */
static __always_inline __u32 tunnel_hash(const struct flow_key *k)
{
	const __u32 *w = (const void *)k;
	__u32 src = w[0], dst = w[4], h;

	if (k->family != 4) {
		src ^= w[1] ^ w[2] ^ w[3];
		dst ^= w[5] ^ w[6] ^ w[7];
	}
	h = rotl32(src, 16) ^ dst ^ w[8] ^ w[9];
	h *= 0x9e3779b1;
	return h ^ (h >> 16);
}

/* ports_flow fills fk from a TCP or UDP header at l4: the flow of the packet,
 * or, with reverse, the flow that an ICMP error quotes, seen from the client. */
static __always_inline int ports_flow(struct flow_key *fk, const void *l4, const void *data_end, __u8 reverse)
{
	const __be16 *ports = l4;

	if ((const void *)(ports + 2) > data_end)
		return -1;
	fk->sport = ports[reverse ? 1 : 0];
	fk->dport = ports[reverse ? 0 : 1];
	return 0;
}

/* addr_words is an IPv6 address's 16 bytes as two 64-bit words, read in
 * 32-bit halves (a packet's address is 4-byte aligned at best). */
static __always_inline void addr_words(__u64 *w, const struct in6_addr *a)
{
	const __u32 *h = a->in6_u.u6_addr32;

	w[0] = h[0] | (__u64)h[1] << 32;
	w[1] = h[2] | (__u64)h[3] << 32;
}

/* packet_flow fills fk (8-byte aligned) from a TCP or UDP packet; -1 for
 * anything else. It stores the key as its five 64-bit words, each once:
 * its readers (tunnel_hash, the flow cache's compare, flow_service) load
 * whole words, which the CPU forwards from a store only if that one store
 * covers them. Built field by field, every such load waited for the
 * stores to reach the cache: a cached hit took 94 ns, now 82 (BenchmarkL4). */
static __always_inline int packet_flow(struct pkt *p, struct flow_key *fk)
{
	__u64 *w = (void *)fk, tail;
	const __u32 *ports = p->l4;

	if (!p->l4_known || (p->l4_proto != IPPROTO_TCP && p->l4_proto != IPPROTO_UDP))
		return -1;
	if ((const void *)(ports + 1) > p->data_end)
		return -1;
	/* sport, dport, proto, family: the key's last word, little-endian. */
	tail = *ports | (__u64)p->l4_proto << 32;
	if (p->ip4) {
		w[0] = p->ip4->saddr;
		w[1] = 0;
		w[2] = p->ip4->daddr;
		w[3] = 0;
		w[4] = tail | 4ULL << 40;
	} else if (p->ip6) {
		addr_words(&w[0], &p->ip6->saddr);
		addr_words(&w[2], &p->ip6->daddr);
		w[4] = tail | 6ULL << 40;
	} else {
		return -1;
	}
	return 0;
}

/* key4_of is an IPv4 flow's key in lb_flows4, from a key packet_flow built
 * (k4 8-byte aligned): two words, stored whole for the kernel's jhash to
 * read (see packet_flow): the addresses, then the ports and the protocol. */
static __always_inline void key4_of(const struct flow_key *fk, struct flow_key4 *k4)
{
	const __u64 *w = (const void *)fk;
	__u64 *k = (void *)k4;

	k[0] = (__u32)w[0] | w[2] << 32;
	k[1] = w[4] & 0xffffffffffULL;
}

/* flow_lookup returns the flow's connection-table entry, or NULL. */
static __always_inline struct flow_state *flow_lookup(const struct flow_key *fk)
{
	struct flow_key4 k4 __attribute__((aligned(8)));

	if (fk->family != 4)
		return bpf_map_lookup_elem(&lb_flows, fk);
	key4_of(fk, &k4);
	return bpf_map_lookup_elem(&lb_flows4, &k4);
}

/* flow_record enters the flow in its family's connection table. */
static __always_inline void flow_record(const struct flow_key *fk, const struct flow_state *st)
{
	struct flow_key4 k4 __attribute__((aligned(8)));

	if (fk->family != 4) {
		bpf_map_update_elem(&lb_flows, fk, st, BPF_ANY);
		return;
	}
	key4_of(fk, &k4);
	bpf_map_update_elem(&lb_flows4, &k4, st, BPF_ANY);
}

/* error_flow fills fk with the client's flow that an ICMP error quotes: a
 * backend's reply (source the VIP) that a router on the way back could not
 * deliver. The error is for the backend that owns the flow. */
static __always_inline int error_flow(struct pkt *p, struct flow_key *fk)
{
	if (!p->l4_known)
		return -1;
	if (p->ip4 && p->l4_proto == IPPROTO_ICMP) {
		struct icmphdr *icmp = p->l4;
		struct iphdr *in = (void *)(icmp + 1);

		if ((void *)(in + 1) > p->data_end)
			return -1;
		if (icmp->type != ICMP_DEST_UNREACH && icmp->type != ICMP_TIME_EXCEEDED &&
		    icmp->type != ICMP_PARAMETERPROB)
			return -1;
		if (in->ihl != 5 || (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP))
			return -1;
		if (ports_flow(fk, in + 1, p->data_end, 1))
			return -1;
		__builtin_memcpy(fk->src, &in->daddr, 4);
		__builtin_memcpy(fk->dst, &in->saddr, 4);
		fk->proto = in->protocol;
		fk->family = 4;
		return 0;
	}
	if (p->ip6 && p->l4_proto == IPPROTO_ICMPV6) {
		struct icmp6hdr *icmp6 = p->l4;
		struct ipv6hdr *in = (void *)(icmp6 + 1);

		if ((void *)(in + 1) > p->data_end)
			return -1;
		if (icmp6->icmp6_type < ICMPV6_DEST_UNREACH || icmp6->icmp6_type > ICMPV6_PARAMPROB)
			return -1;
		if (in->nexthdr != IPPROTO_TCP && in->nexthdr != IPPROTO_UDP)
			return -1;
		if (ports_flow(fk, in + 1, p->data_end, 1))
			return -1;
		__builtin_memcpy(fk->src, &in->daddr, 16);
		__builtin_memcpy(fk->dst, &in->saddr, 16);
		fk->proto = in->nexthdr;
		fk->family = 6;
		return 0;
	}
	return -1;
}

/* vip_maybe reports whether a destination, given as the XOR of its four
 * 32-bit words (an IPv4 address is its one word), may be a VIP: its bit in
 * lb_vip_filter (maps/lb.go sets the bit of every VIP). Most packets at an
 * edge are for no VIP, and an array lookup sends them on for a few ns where
 * a hash lookup costs tens. */
static __always_inline int vip_maybe(__u32 fold)
{
	__u32 h = (fold * FIB_HASH_MUL) >> (32 - VIP_FILTER_BITS), word = h >> 6;
	__u64 *bits = bpf_map_lookup_elem(&lb_vip_filter, &word);

	return bits && (*bits >> (h & 63)) & 1;
}

/* dst_fold is the packet's destination folded as vip_maybe takes it. */
static __always_inline __u32 dst_fold(const struct pkt *p)
{
	const __u32 *w;

	if (p->ip4)
		return p->ip4->daddr;
	if (!p->ip6)
		return 0;
	w = p->ip6->daddr.in6_u.u6_addr32;
	return w[0] ^ w[1] ^ w[2] ^ w[3];
}

/* find_service looks a flow's service up: (dst, dport, proto), else the
 * VIP's port-0 service. The caller has checked the VIP filter, so what
 * reaches it is mostly for a VIP: an exact service costs one hash lookup,
 * a port-0 service or a destination the filter let through by chance two.
 * (A first lookup in lb_vips would add one to every forwarded packet; every
 * service's VIP is in lb_vips, and its bit in the filter, while it exists.) */
static __always_inline struct svc_info *find_service(const struct flow_key *fk)
{
	struct svc_key sk = {};
	struct svc_info *svc;

	__builtin_memcpy(sk.addr, fk->dst, 16);
	sk.family = fk->family;
	sk.port = fk->dport;
	sk.proto = fk->proto;
	svc = bpf_map_lookup_elem(&lb_services, &sk);
	if (svc)
		return svc;
	sk.port = 0;
	return bpf_map_lookup_elem(&lb_services, &sk);
}

/* key_fold is a flow key's destination folded as vip_maybe takes it (an
 * IPv4 address is the first word, the others zero). */
static __always_inline __u32 key_fold(const struct flow_key *fk)
{
	const __u32 *w = (const void *)fk->dst;

	return w[0] ^ w[1] ^ w[2] ^ w[3];
}

/* flow_service returns the service of a flow whose connection-table entry
 * names its id (id: the entry's svc, the id + 1): the id's entry in lb_svc_ids, if its
 * key is still the flow's (a port-0 service's only while no service has the
 * flow's port, as in find_service). An array lookup where find_service
 * hashes a 20-byte key. NULL when the entry names no id, or the id is free
 * or another service's now (ids are reused): the caller looks the service
 * up by the flow. maps/lb.go rewrites an entry in place, so a read may mix
 * two versions of the id's service: a key that matches the flow is then
 * the id's service's, whose backends the flow's entry names. */
static __always_inline struct svc_info *flow_service(__u32 id, const struct flow_key *fk)
{
	struct svc_entry *e;
	struct svc_info *exact;
	struct svc_key sk = {};
	const __u64 *a, *d;

	if (!id--)
		return 0;
	e = bpf_map_lookup_elem(&lb_svc_ids, &id);
	if (!e)
		return 0;
	a = (const void *)e->key.addr;
	d = (const void *)fk->dst;
	if (((a[0] ^ d[0]) | (a[1] ^ d[1])) || e->key.family != fk->family || e->key.proto != fk->proto)
		return 0;
	if (e->key.port == fk->dport)
		return &e->info;
	if (e->key.port)
		return 0;
	__builtin_memcpy(sk.addr, fk->dst, 16);
	sk.family = fk->family;
	sk.port = fk->dport;
	sk.proto = fk->proto;
	exact = bpf_map_lookup_elem(&lb_services, &sk);
	return exact ? exact : &e->info;
}

/* flow_clock is the time for a flow's seen_ns, which only a UDP flow's idle
 * timeout reads: the fine clock for a timeout under UDP_COARSE_TIMEOUT_NS (it
 * may be 1 ns), else the coarse one, for a third of the cost. The coarse
 * clock lags the fine one by up to a tick (10 ms at most), which such a
 * timeout does not notice; seen_ns is compared signed, as it may be ahead. */
static __always_inline __u64 flow_clock(const struct flow_key *fk, const struct lb_settings *cfg)
{
	if (fk->proto == IPPROTO_UDP && cfg && cfg->udp_timeout_ns && cfg->udp_timeout_ns < UDP_COARSE_TIMEOUT_NS)
		return bpf_ktime_get_ns();
	return bpf_ktime_get_coarse_ns();
}

/* seen_refresh is how old a UDP flow's seen_ns may grow before a packet
 * refreshes it: a second, or a quarter of a shorter idle timeout, so that a
 * flow that keeps sending is never taken for idle (with a timeout of a
 * second it was, at every refresh); seen_ns then lags the last packet by
 * at most this, so a flow idle for 3/4 of a short timeout may go. */
static __always_inline __u64 seen_refresh(const struct lb_settings *cfg)
{
	__u64 quarter;

	if (!cfg || !cfg->udp_timeout_ns)
		return SEEN_REFRESH_NS;
	quarter = cfg->udp_timeout_ns / 4;
	return quarter < SEEN_REFRESH_NS ? quarter : SEEN_REFRESH_NS;
}

/* flow_backend returns backend id, the one a flow's entry names, if the flow
 * may keep it: the backend still belongs to the service and is not down.
 * Drained backends (and weight 0) keep their flows. NULL otherwise. */
static __always_inline struct backend_info *flow_backend(__u32 id, const struct svc_info *svc)
{
	struct backend_info *b = bpf_map_lookup_elem(&lb_backends, &id);

	if (!b || !b->family || (b->flags & BACKEND_F_DOWN) || b->svc != svc->id)
		return 0;
	return b;
}

/* usable returns backend id, the one the connection-table entry st names,
 * if the flow may keep it (flow_backend) and, a UDP flow, has not idled out
 * (*now is then the time). NULL otherwise. */
static __always_inline struct backend_info *usable(struct flow_state *st, __u32 id, const struct flow_key *fk,
						   const struct svc_info *svc, const struct lb_settings *cfg, __u64 *now)
{
	struct backend_info *b = flow_backend(id, svc);

	if (!b)
		return 0;
	if (fk->proto == IPPROTO_UDP) {
		*now = flow_clock(fk, cfg);
		if (cfg && cfg->udp_timeout_ns && (__s64)(*now - st->seen_ns) > (__s64)cfg->udp_timeout_ns)
			return 0;
	}
	return b;
}

/* slot_of is h % svc->table_size, the flow's Maglev slot, without a
 * division where lb_svc_ids has the size's mod_magic: Lemire's fastmod
 * ((h * magic mod 2^64) * size / 2^64), the 96-bit product in 32-bit
 * halves. A read that mixes two versions of the entry still gives a slot
 * of the table, so a backend of the service. */
static __always_inline __u32 slot_of(__u32 h, const struct svc_info *svc)
{
	struct svc_entry *e = bpf_map_lookup_elem(&lb_svc_ids, &svc->id);
	__u64 low, d = svc->table_size;

	if (!e || !e->mod_magic || e->info.table_size != svc->table_size)
		return h % svc->table_size;
	low = e->mod_magic * h;
	return ((low >> 32) * d + (((low & 0xffffffff) * d) >> 32)) >> 32;
}

/* pick_backend returns the flow's backend and sets *bid to its id: the
 * connection table's (st, the flow's entry or NULL) when it still holds,
 * otherwise the service's Maglev slot for the flow hash, which a TCP or UDP
 * flow then records. NULL when the service has no backend for the flow (or
 * the slot names a free one). A hit neither hashes the flow, nor reads a
 * clock for TCP, nor looks the backend up a second time. */
static __always_inline struct backend_info *pick_backend(const struct flow_key *fk, struct flow_state *st,
							 const struct svc_info *svc, const struct lb_settings *cfg,
							 int record, int *new_flow, __u32 *bid)
{
	struct backend_info *b;
	__u32 slot, id, *idp, sid = svc->id + 1;
	__u64 now = 0;
	void *table;

	if (st) {
		/* Read once: the backend looked up is the one returned. */
		id = *(volatile __u32 *)&st->backend;
		b = usable(st, id, fk, svc, cfg, &now);
		if (b) {
			/* A UDP flow's (the one clock read, by usable) */
			if (now && (__s64)(now - st->seen_ns) > (__s64)seen_refresh(cfg))
				st->seen_ns = now;
			if (st->svc != sid)
				st->svc = sid;
			FLOW_STATS(hits);
			*bid = id;
			return b;
		}
	}
	FLOW_STATS(misses);
	table = bpf_map_lookup_elem(&lb_maglev, &svc->id);
	if (!table || !svc->table_size)
		return 0;
	slot = slot_of(flow_hash(fk, svc->hash), svc);
	idp = bpf_map_lookup_elem(table, &slot);
	if (!idp || *idp == NO_BACKEND)
		return 0;
	id = *idp;
	if (record) {
		if (!now)
			now = flow_clock(fk, cfg);
		/* A stale entry (its backend down or gone, an idle UDP flow) is
		 * rewritten in place, as a hit refreshes seen_ns: an update of
		 * the LRU table would take a new element and its lock. */
		if (st) {
			st->backend = id;
			st->svc = sid;
			st->seen_ns = now;
		} else {
			struct flow_state ns = { .seen_ns = now, .backend = id, .svc = sid };

			flow_record(fk, &ns);
		}
		*new_flow = 1;
	}
	*bid = id;
	b = bpf_map_lookup_elem(&lb_backends, &id);
	if (!b || !b->family)
		return 0;
	return b;
}

static __always_inline void count_lb(__u32 svc, __u32 backend, __u64 bytes, int new_flow)
{
	struct lb_counter *c = bpf_map_lookup_elem(&stats_svc, &svc);

	if (c) {
		c->packets++;
		c->bytes += bytes;
		c->new_flows += new_flow;
	}
	c = bpf_map_lookup_elem(&stats_backend, &backend);
	if (c) {
		c->packets++;
		c->bytes += bytes;
		c->new_flows += new_flow;
	}
}

static __always_inline int encap_ipip(struct xdp_md *ctx, struct pkt *p, const struct backend_info *b,
				      const struct lb_settings *cfg, __u32 egress, __u32 hash)
{
	const struct lb_iface *ifc = egress_iface(egress);
	__u32 mtu = ifc ? ifc->mtu : 0;
	struct iphdr *in = p->ip4, *out;
	__u16 l2_len = p->l2_len, inner_len = bpf_ntohs(in->tot_len);
	__be16 df = in->frag_off & bpf_htons(IP_DF);
	__u8 tos = in->tos;
	__be32 saddr = encap_src4(cfg, hash, in->daddr), daddr;

	if (mtu && inner_len + IPIP_OVERHEAD > mtu) {
		if (df)
			return too_big4(ctx, p, mtu - IPIP_OVERHEAD);
		return drop(ctx, DROP_LB_TOO_BIG);
	}
	if (l2_len > MAX_L2_LEN || push_outer(ctx, l2_len, IPIP_OVERHEAD))
		return drop(ctx, DROP_LB_ENCAP);
	out = l3_at(ctx, l2_len, sizeof(*out));
	if (!out)
		return drop(ctx, DROP_LB_ENCAP);
	__builtin_memcpy(&daddr, b->addr, 4);
	out->version = 4;
	out->ihl = 5;
	out->tos = tos;
	out->tot_len = bpf_htons(inner_len + IPIP_OVERHEAD);
	out->id = 0;
	out->frag_off = df;
	out->ttl = 64;
	out->protocol = IPPROTO_IPIP;
	out->saddr = saddr;
	out->daddr = daddr;
	out->check = 0;
	out->check = ipv4_csum(out);
	if (set_macs(ctx, b->mac, ifc))
		return drop(ctx, DROP_LB_ENCAP);
	return send_to(ctx, egress);
}

static __always_inline int encap_ip6ip6(struct xdp_md *ctx, struct pkt *p, const struct backend_info *b,
					const struct lb_settings *cfg, __u32 egress, __u32 hash)
{
	struct ipv6hdr *in = p->ip6, *out;
	const struct lb_iface *ifc;
	__u16 l2_len = p->l2_len;
	__u32 mtu, inner_len;
	__u8 tc, saddr[16];

	/* Tested before any read, and opaque, so that clang keeps the test
	 * the verifier needs: a path clang knows to be IPv6 may not look so
	 * to the verifier. */
	barrier_var(in);
	if (!in)
		return drop(ctx, DROP_LB_ENCAP);
	ifc = egress_iface(egress);
	mtu = ifc ? ifc->mtu : 0;
	inner_len = sizeof(*in) + bpf_ntohs(in->payload_len);
	tc = (in->priority << 4) | (in->flow_lbl[0] >> 4);
	encap_src6(cfg, hash, (const __u8 *)&in->daddr, saddr);
	if (mtu && inner_len + IP6IP6_OVERHEAD > mtu)
		return too_big6(ctx, p, mtu - IP6IP6_OVERHEAD);
	if (l2_len > MAX_L2_LEN || push_outer(ctx, l2_len, IP6IP6_OVERHEAD))
		return drop(ctx, DROP_LB_ENCAP);
	out = l3_at(ctx, l2_len, sizeof(*out));
	if (!out)
		return drop(ctx, DROP_LB_ENCAP);
	/* Version, the inner traffic class, the flow hash as the flow label. */
	*(__be32 *)out = bpf_htonl(6 << 28 | (__u32)tc << 20 | (hash & 0xfffff));
	out->payload_len = bpf_htons(inner_len);
	out->nexthdr = IPPROTO_IPV6;
	out->hop_limit = 64;
	__builtin_memcpy(&out->saddr, saddr, 16);
	__builtin_memcpy(&out->daddr, b->addr, 16);
	if (set_macs(ctx, b->mac, ifc))
		return drop(ctx, DROP_LB_ENCAP);
	return send_to(ctx, egress);
}

/* flow_gen is the flow caches' generation (lb_flow_gen). */
static __always_inline __u32 flow_gen(void)
{
	__u32 zero = 0, *gen = bpf_map_lookup_elem(&lb_flow_gen, &zero);

	return gen ? *(volatile __u32 *)gen : 0;
}

/* cached_flow returns the backend this CPU's cache entry ce holds for the
 * flow, and sets *svc and *bid, if the entry is the flow's, of generation
 * gen, and still names a usable backend of a live service (the checks a
 * table hit makes). NULL sends the packet to the connection table: a miss,
 * and every FLOW_CACHE_REFRESH-th hit. */
static __always_inline struct backend_info *cached_flow(struct flow_cache_entry *ce, const struct flow_key *fk,
							__u32 gen, struct svc_info **svc, __u32 *bid)
{
	const __u64 *a = (const void *)&ce->key, *k = (const void *)fk;
	struct backend_info *b;
	struct svc_info *s;

	if (ce->gen != gen || ((a[0] ^ k[0]) | (a[1] ^ k[1]) | (a[2] ^ k[2]) | (a[3] ^ k[3]) | (a[4] ^ k[4])))
		return 0;
	if (!(++ce->hits % FLOW_CACHE_REFRESH))
		return 0;
	s = flow_service(ce->svc, fk);
	if (!s)
		return 0;
	b = flow_backend(ce->backend, s);
	if (!b)
		return 0;
	FLOW_STATS(cache_hits);
	*svc = s;
	*bid = ce->backend;
	return b;
}

/* cacheable says whether this CPU's cache may hold the flow: TCP, not an
 * ICMP error's (which never starts a flow). */
static __always_inline int cacheable(const struct flow_key *fk, int record)
{
	return !lb_flow_cache_off && record && fk->proto == IPPROTO_TCP;
}

/* flow_cache_slot is the flow's entry in this CPU's cache, by its tunnel
 * hash. */
static __always_inline struct flow_cache_entry *flow_cache_slot(__u32 hash)
{
	__u32 slot = hash & (lb_flow_cache_slots - 1);

	return bpf_map_lookup_elem(&lb_flow_cache, &slot);
}

/* lb_stage forwards packets of the services to their backends, answers
 * echo requests to VIPs, and returns CONTINUE for everything else. */
static __always_inline int lb_stage(struct xdp_md *ctx, struct pkt *p)
{
	/* Aligned: flow_service reads the destination in 64-bit words. */
	struct flow_key fk __attribute__((aligned(8))) = {};
	struct flow_cache_entry *ce = 0;
	struct flow_state *st;
	struct lb_settings *cfg;
	struct svc_info *svc = 0;
	struct backend_info *b = 0;
	int new_flow = 0, record = 1, cached, ret;
	__u32 zero = 0, hash = 0, gen = 0, bid = NO_BACKEND, egress;

	/* TCP and UDP go to the destination's service: most have none, so
	 * check the filter before building the flow key. A frame that is not
	 * IP has no flow: packet_flow, echo_reply and error_flow test ip4 and
	 * ip6 one at a time (a test of both at once here, clang compiled to
	 * their OR, which the verifier refuses). */
	if (p->l4_known && (p->l4_proto == IPPROTO_TCP || p->l4_proto == IPPROTO_UDP) && !vip_maybe(dst_fold(p)))
		return CONTINUE;
	if (packet_flow(p, &fk)) {
		ret = echo_reply(p);
		if (ret != CONTINUE)
			return ret;
		if (error_flow(p, &fk))
			return CONTINUE;
		/* An error quotes a flow to a VIP: the filter again, for its VIP. */
		if (!vip_maybe(key_fold(&fk)))
			return CONTINUE;
		record = 0; /* an error never starts a flow */
	}
	/* A flow the cache may hold: its slot by the tunnel's hash, and the
	 * caches' generation, read before any flow state (see lb_flow_gen).
	 * The others (UDP) pay for neither. */
	cached = cacheable(&fk, record);
	if (cached) {
		hash = tunnel_hash(&fk);
		gen = flow_gen();
		ce = flow_cache_slot(hash);
		if (ce)
			b = cached_flow(ce, &fk, gen, &svc, &bid);
	}
	cfg = bpf_map_lookup_elem(&lb_config, &zero);
	if (!b) {
		/* The connection table: its entry names the flow's service,
		 * which an array then gives without a hash lookup. Read once:
		 * another CPU may record an id meanwhile. */
		st = flow_lookup(&fk);
		if (st)
			svc = flow_service(*(volatile __u32 *)&st->svc, &fk);
		if (!svc)
			svc = find_service(&fk);
		if (!svc)
			return CONTINUE;
		b = pick_backend(&fk, st, svc, cfg, record, &new_flow, &bid);
		if (!b)
			return drop(ctx, DROP_LB_NO_BACKEND);
		if (ce) {
			ce->key = fk;
			ce->backend = bid;
			ce->svc = svc->id + 1;
			ce->gen = gen;
		}
	}
	if (!record)
		FLOW_STATS(icmp_routed);
	count_lb(svc->id, bid, pkt_len(ctx), new_flow);
	egress = b->ifindex ? b->ifindex : ctx->ingress_ifindex;
	if (svc->mode == LB_MODE_DSR_L2) {
		if (set_macs(ctx, b->mac, egress_iface(egress)))
			return drop(ctx, DROP_LB_ENCAP);
		return send_to(ctx, egress);
	}
	if (!cached)
		hash = tunnel_hash(&fk);
	if (p->ip4)
		return encap_ipip(ctx, p, b, cfg, egress, hash);
	return encap_ip6ip6(ctx, p, b, cfg, egress, hash);
}

#endif /* SLUICE_LB_H */
