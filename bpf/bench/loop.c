//go:build ignore

/* loop.c: the frame loop of the veth forwarding benchmark, for kernels that
 * refuse live frames. loop_back, on the backends' veth, takes each frame the
 * load balancer forwarded (an IPIP tunnel, a re-addressed frame or a DNATed
 * one), counts it, makes it the next client frame to the VIP (tunnel
 * stripped, destination the VIP again, the next of ports source ports,
 * TTL and checksum anew, the MACs of the clients' link) and redirects it
 * through loop_out to the clients' veth, whose peer is the load balancer's
 * input again. Frames seeded once circulate, so the generator's cost per
 * frame is one XDP run on the backends' side, and the load balancer's core
 * does what it does with live frames. An empty loop_out drops them: the
 * loop stops. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "../include/csum.h"
#include "../include/eth.h"
#include "bench.h"

/* Set before loading. The VIP is in network order. */
volatile const __u8 lb_mac[ETH_ALEN];  /* the load balancer's side of the clients' link */
volatile const __u8 gen_mac[ETH_ALEN]; /* the clients' side of it */
volatile const __be32 vip;
volatile const __u32 ports; /* a power of two */

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} loop_out SEC(".maps");

/* Per-CPU: [0] frames that came round, [1] the source-port sequence. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} loop_stats SEC(".maps");

SEC("xdp")
int loop_back(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp;
	__u32 k_came = 0, k_seq = 1;
	__u64 *came, *seq;
	int i;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_DROP;
	ip = strip_ipip4(ctx, ip, &data_end);
	if (!ip)
		return XDP_DROP;
	eth = (void *)(long)ctx->data;
	udp = (void *)(ip + 1);
	if (ip->ihl != 5 || ip->protocol != IPPROTO_UDP || (void *)(udp + 1) > data_end)
		return XDP_DROP;
	came = bpf_map_lookup_elem(&loop_stats, &k_came);
	seq = bpf_map_lookup_elem(&loop_stats, &k_seq);
	if (!came || !seq)
		return XDP_DROP;
	(*came)++;
	ip->daddr = vip;
	ip->ttl = 64;
	ip->check = 0;
	ip->check = ipv4_csum(ip);
	udp->source = bpf_htons(10000 + ((*seq)++ & (ports - 1)));
	udp->check = 0;
#pragma unroll
	for (i = 0; i < ETH_ALEN; i++) {
		eth->h_dest[i] = lb_mac[i];
		eth->h_source[i] = gen_mac[i];
	}
	return bpf_redirect_map(&loop_out, 0, XDP_DROP);
}

/* xdp_pass_all, on the load balancer's input when no XDP program of a
 * contender is there (nftables), passes the frames the loop redirects to
 * it to the kernel: with it nftables came round faster (0.61 Mpps against
 * 0.54 without, one run each), so the loop gives nftables that way in. */
SEC("xdp")
int xdp_pass_all(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
