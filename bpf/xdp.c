//go:build ignore

/* xdp.c: the Sluice XDP program: parse → ACL → L4 services → verdict, counted. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "include/consts.h"
#include "include/structs.h"
#include "include/maps.h"
#include "include/stats.h"
#include "include/parse.h"
#include "include/acl.h"
#include "include/lb.h"

SEC("xdp")
int sluice_xdp(struct xdp_md *ctx)
{
	struct pkt p = {};
	int verdict;

	verdict = parse(ctx, &p);
	if (verdict == CONTINUE)
		verdict = acl_stage(ctx, &p);
	if (verdict == CONTINUE)
		verdict = lb_stage(ctx, &p);
	if (verdict == CONTINUE)
		verdict = XDP_PASS;
	count_verdict(ctx, verdict);
	return verdict;
}

/* Referenced so that BTF, and so bpf2go, carries the enums shared with Go. */
const enum verdict *unused_verdict __attribute__((unused));
const enum drop_reason *unused_drop_reason __attribute__((unused));
const enum policy_mode *unused_policy_mode __attribute__((unused));
const enum lb_mode *unused_lb_mode __attribute__((unused));
const enum lb_hash *unused_lb_hash __attribute__((unused));
const enum backend_flag *unused_backend_flag __attribute__((unused));

char LICENSE[] SEC("license") = "Dual BSD/GPL";
