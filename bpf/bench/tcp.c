//go:build ignore

/* tcp.c: stateless TCP endpoints in XDP, for the TCP comparison of the veth
 * benchmark. tcp_syn_gen, run as the live-frames generator, opens
 * connections from many client addresses and ports; tcp_server, on the
 * backends' veth, accepts, echoes the request and closes; tcp_client, on the
 * clients' veth, sends the request, closes, and counts the echoes. Neither
 * endpoint keeps state: every answer is computed from the segment it answers
 * (its sequence numbers), so a connection costs the endpoints a few XDP runs
 * and what is measured is the load balancer between them. Answers carry no
 * TCP options: a peer that offered some in its SYN falls back to the
 * defaults (RFC 9293). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "../include/csum.h"
#include "../include/eth.h"
#include "bench.h"

#define PAYLOAD 16 /* the request and its echo */
#define SERVER_ISN 0x5eed0000
/* Every ISN is a multiple of 256 (the client's is its number shifted), so an
 * endpoint's sequence number after its FIN is known from any number of the
 * connection: ISN, SYN, the 16 bytes, FIN. Its last ACK takes that, not the
 * acknowledgment it answers: in a simultaneous close the peer's FIN does not
 * acknowledge ours yet. */
#define AFTER_FIN(seq) (((seq) & ~0xffu) + 2 + PAYLOAD)
#define IP_DF 0x4000
#define SEED_PROTO 0x88b5 /* IEEE local experimental EtherType */

/* Set before loading. Addresses, ports and masks are in network order. */
volatile const __u8 lb_mac[ETH_ALEN];     /* the load balancer's side of the clients' link */
volatile const __u8 client_mac[ETH_ALEN]; /* the clients' side of it */
volatile const __be32 vip;
volatile const __be16 vport;
volatile const __be32 client_net; /* the clients' addresses: client_net | (n & ~client_mask) */
volatile const __be32 client_mask;

/* The request; tcp_client counts an answer of its length as its echo. */
volatile const char request[PAYLOAD] = "sluice-bench-req";

/* tcp_server answers a client (a dsr-ipip reply, from the VIP) through
 * to_clients, the clients' link: the network's way back that direct server
 * return takes around the load balancer. Anything else (HAProxy's side of a
 * connection it proxies) goes back where it came from. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} to_clients SEC(".maps");

enum tcp_event {
	EV_OPENED,    /* client: a SYN-ACK answered with the request */
	EV_DONE,      /* client: the echo of the request arrived */
	EV_BAD_REPLY, /* client: a reply that is not the echo */
	EV_ANSWERED,  /* server: segments answered */
	EV_IGNORED,   /* either: TCP segments of the test that needed no answer */
	EV_FAILED,    /* either: a frame that could not be resized or answered */
	EV_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, EV_MAX);
} tcp_events SEC(".maps");

/* The generator's pace, set before each run: a SYN every interval_ns (the
 * frames between are dropped), from the next of the clients. */
struct gen_pace {
	__u64 interval_ns;
	__u64 next_ns; /* 0: the next frame */
	__u64 sent;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct gen_pace);
	__uint(max_entries, 1);
} gen_pace SEC(".maps");

static __always_inline void event(__u32 ev)
{
	__u64 *n = bpf_map_lookup_elem(&tcp_events, &ev);

	if (n)
		(*n)++;
}

static __always_inline void set_mac(struct ethhdr *eth, const volatile __u8 *dst, const volatile __u8 *src)
{
	int i;

#pragma unroll
	for (i = 0; i < ETH_ALEN; i++) {
		eth->h_dest[i] = dst[i];
		eth->h_source[i] = src[i];
	}
}

/* finish writes the IPv4 header (but the addresses) and the TCP header's
 * doff, window and checksum, for a segment of 20 header and paylen payload
 * bytes. */
static __always_inline void finish(struct iphdr *ip, struct tcphdr *tcp, __u32 paylen, void *data_end)
{
	__u64 sum;

	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(sizeof(*ip) + sizeof(*tcp) + paylen);
	ip->id = 0;
	ip->frag_off = bpf_htons(IP_DF);
	ip->ttl = 64;
	ip->protocol = IPPROTO_TCP;
	ip->check = 0;
	ip->check = ipv4_csum(ip);
	tcp->doff = 5;
	tcp->window = bpf_htons(65535);
	tcp->urg_ptr = 0;
	tcp->check = 0;
	sum = (ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) + (ip->daddr >> 16) +
	      bpf_htons(IPPROTO_TCP) + bpf_htons(sizeof(*tcp) + paylen);
	sum = csum_add_pkt(sum, tcp, sizeof(*tcp) + paylen, data_end);
	tcp->check = csum_fold(sum);
}

/* The segment being answered, read before the frame is resized. */
struct seg {
	__u8 src_mac[ETH_ALEN], dst_mac[ETH_ALEN];
	__be32 saddr, daddr;
	__be16 sport, dport;
	__u32 seq, ack_seq; /* host order */
	__u32 paylen;
	__u8 syn, ack, fin, rst;
	__u8 options; /* header longer than 20 bytes */
};

/* parse reads the TCP segment of the IPv4 packet at ip, behind eth; 0 when
 * it is not one. */
static __always_inline int parse(struct ethhdr *eth, struct iphdr *ip, void *data_end, struct seg *s)
{
	struct tcphdr *tcp = (void *)(ip + 1);
	__u32 tot, hdr;

	if ((void *)(tcp + 1) > data_end || ip->ihl != 5 || ip->protocol != IPPROTO_TCP)
		return 0;
	tot = bpf_ntohs(ip->tot_len);
	hdr = sizeof(*ip) + tcp->doff * 4;
	if (tcp->doff < 5 || tot < hdr)
		return 0;
	mac_copy(s->src_mac, eth->h_source);
	mac_copy(s->dst_mac, eth->h_dest);
	s->saddr = ip->saddr;
	s->daddr = ip->daddr;
	s->sport = tcp->source;
	s->dport = tcp->dest;
	s->seq = bpf_ntohl(tcp->seq);
	s->ack_seq = bpf_ntohl(tcp->ack_seq);
	s->paylen = tot - hdr;
	s->syn = tcp->syn;
	s->ack = tcp->ack;
	s->fin = tcp->fin;
	s->rst = tcp->rst;
	s->options = tcp->doff > 5;
	return 1;
}

/* answer turns the frame into the answer to s: back to its sender (MACs,
 * addresses and ports swapped), with seq, ack, syn, fin, and paylen payload
 * bytes (those after the header are kept; the client writes its request).
 * A longer answer takes its room at the head, which the kernel guarantees
 * (XDP_PACKET_HEADROOM), where a frame of the stack's may have no tailroom.
 * It returns the answer's IPv4 header, or 0 when the frame could not be
 * resized. */
static __always_inline struct iphdr *answer(struct xdp_md *ctx, const struct seg *s, __u32 seq, __u32 ack,
					    __u8 syn, __u8 fin, __u32 paylen, int write_request)
{
	int grow = (int)(sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct tcphdr) + paylen) -
		   (int)(ctx->data_end - ctx->data);
	void *data, *data_end;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct tcphdr *tcp;

	if (grow > 0 ? bpf_xdp_adjust_head(ctx, -grow) : bpf_xdp_adjust_tail(ctx, grow))
		return 0;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	ip = (void *)(eth + 1);
	tcp = (void *)(ip + 1);
	if ((void *)(tcp + 1) + paylen > data_end || paylen > PAYLOAD)
		return 0;
	mac_copy(eth->h_dest, s->src_mac);
	mac_copy(eth->h_source, s->dst_mac);
	eth->h_proto = bpf_htons(ETH_P_IP);
	ip->saddr = s->daddr;
	ip->daddr = s->saddr;
	__builtin_memset(tcp, 0, sizeof(*tcp));
	tcp->source = s->dport;
	tcp->dest = s->sport;
	tcp->seq = bpf_htonl(seq);
	tcp->ack_seq = bpf_htonl(ack);
	tcp->syn = syn;
	tcp->fin = fin;
	tcp->ack = 1;
	tcp->psh = paylen > 0;
	if (write_request && paylen == PAYLOAD) {
		int i;

#pragma unroll
		for (i = 0; i < PAYLOAD; i++)
			((__u8 *)(tcp + 1))[i] = request[i];
	}
	finish(ip, tcp, paylen, data_end);
	return ip;
}

static __always_inline int is_client(__be32 addr)
{
	return (addr & client_mask) == client_net;
}

/* tcp_syn_gen, run with a large repeat count on a CPU of its own, sends a
 * SYN from the next client (address and port counted) to the VIP every
 * interval_ns and drops the frames between: one run paces the connections
 * evenly, where a run per burst cost the kernel milliseconds each (the live
 * frames' page pool). It writes the whole frame, whatever it held: in
 * live-frames mode the kernel recycles pages without restoring them. */
static __always_inline int syn_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1);
	struct gen_pace *p;
	__u32 zero = 0, n;
	__u64 now;

	if ((void *)(tcp + 1) > data_end)
		return XDP_DROP;
	p = bpf_map_lookup_elem(&gen_pace, &zero);
	if (!p)
		return XDP_DROP;
	now = bpf_ktime_get_ns();
	if (now < p->next_ns)
		return XDP_DROP;
	/* The first SYN, or behind by more than a few (the CPU was taken):
	 * pace from now, catching up no further, so that no burst follows.
	 * Without the first test, a first next_ns of 0 counted from boot. */
	if (!p->next_ns || p->next_ns + 4 * p->interval_ns < now)
		p->next_ns = now;
	p->next_ns += p->interval_ns;
	n = p->sent++;
	set_mac(eth, lb_mac, client_mac);
	eth->h_proto = bpf_htons(ETH_P_IP);
	ip->saddr = client_net | (bpf_htonl(n) & ~client_mask);
	ip->daddr = vip;
	__builtin_memset(tcp, 0, sizeof(*tcp));
	/* The port moves on when every address has had one: a 4-tuple comes
	 * back after 2^15 ports times the addresses, long after TIME_WAIT. */
	tcp->source = bpf_htons(1024 + ((n / (bpf_ntohl(~client_mask) + 1)) & 0x7fff));
	tcp->dest = vport;
	tcp->seq = bpf_htonl(n << 8);
	tcp->syn = 1;
	finish(ip, tcp, 0, data_end);
	return XDP_TX;
}

SEC("xdp")
int tcp_syn_gen(struct xdp_md *ctx)
{
	return syn_gen(ctx);
}

/* tcp_server answers the connections to vport on the backends' veth: a SYN
 * with a SYN-ACK, the request with its echo and a FIN (the server closes
 * first, so no TIME_WAIT is left on the load balancer's side of HAProxy's
 * connections), a FIN with its ACK. dsr-ipip packets are decapsulated
 * first. Frames of anything else pass. */
SEC("xdp")
int tcp_server(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct seg s;

	if ((void *)(ip + 1) > data_end || eth_proto(eth) != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = strip_ipip4(ctx, ip, &data_end);
	if (!ip)
		return XDP_DROP;
	eth = (void *)(long)ctx->data;
	if (!parse(eth, ip, data_end, &s) || s.dport != vport)
		return XDP_PASS;
	if (s.rst || (!s.syn && !s.fin && !s.paylen)) {
		event(EV_IGNORED);
		return XDP_DROP;
	}
	if (s.paylen && (s.options || s.paylen != PAYLOAD)) {
		event(EV_FAILED);
		return XDP_DROP;
	}
	if (s.syn)
		ip = answer(ctx, &s, SERVER_ISN, s.seq + 1, 1, 0, 0, 0);
	else if (s.paylen)
		ip = answer(ctx, &s, s.ack_seq, s.seq + s.paylen + s.fin, 0, 1, PAYLOAD, 0);
	else
		ip = answer(ctx, &s, AFTER_FIN(s.ack_seq), s.seq + 1, 0, 0, 0, 0);
	if (!ip) {
		event(EV_FAILED);
		return XDP_DROP;
	}
	event(EV_ANSWERED);
	if (is_client(ip->daddr)) {
		eth = (void *)(long)ctx->data;
		if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
			return XDP_DROP;
		set_mac(eth, client_mac, lb_mac);
		return bpf_redirect_map(&to_clients, 0, XDP_DROP);
	}
	return XDP_TX;
}

/* tcp_client answers, on the clients' veth, a SYN-ACK with the request, the
 * echo with a FIN (counted), a FIN with its ACK; segments to other
 * addresses than the clients' pass. A seed frame (SEED_PROTO, sent into the
 * veth from the load balancer's side where live frames are refused) it
 * turns into the generator's next SYN, as tcp_syn_gen would. */
SEC("xdp")
int tcp_client(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct seg s;

	if ((void *)(eth + 1) <= data_end && eth->h_proto == bpf_htons(SEED_PROTO))
		return syn_gen(ctx);
	if ((void *)(ip + 1) > data_end || eth_proto(eth) != bpf_htons(ETH_P_IP) || !is_client(ip->daddr))
		return XDP_PASS;
	if (!parse(eth, ip, data_end, &s) || s.sport != vport)
		return XDP_PASS;
	if (s.rst || (!s.syn && !s.fin && !s.paylen)) {
		event(EV_IGNORED);
		return XDP_DROP;
	}
	if (s.syn && s.ack) {
		ip = answer(ctx, &s, s.ack_seq, s.seq + 1, 0, 0, PAYLOAD, 1);
		if (ip)
			event(EV_OPENED);
	} else if (s.paylen) {
		event(s.paylen == PAYLOAD ? EV_DONE : EV_BAD_REPLY);
		ip = answer(ctx, &s, s.ack_seq, s.seq + s.paylen + s.fin, 0, 1, 0, 0);
	} else if (s.fin) {
		ip = answer(ctx, &s, AFTER_FIN(s.ack_seq), s.seq + 1, 0, 0, 0, 0);
	} else {
		event(EV_IGNORED);
		return XDP_DROP;
	}
	if (!ip) {
		event(EV_FAILED);
		return XDP_DROP;
	}
	return XDP_TX;
}

/* xdp_pass lets a veth take in the frames its peer sends with XDP_TX. */
SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
