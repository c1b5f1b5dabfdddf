//go:build ignore

/* gen.c: the traffic generator of the veth benchmarks: run with
 * BPF_F_TEST_XDP_LIVE_FRAMES, every frame goes out of the device it is
 * "received" on, to the veth peer under test. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_tx_all(struct xdp_md *ctx)
{
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
