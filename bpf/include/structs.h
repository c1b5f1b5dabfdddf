/* structs.h: every struct and enum shared between the BPF programs and Go. */
#ifndef SLUICE_STRUCTS_H
#define SLUICE_STRUCTS_H

#include <linux/types.h>
#include "consts.h"

/* Index of a verdict counter; equal to the XDP_* action it counts.
 * Mirrored in Go by bpf.XDPVerdict. */
enum verdict {
	VERDICT_ABORTED = 0,
	VERDICT_DROP = 1,
	VERDICT_PASS = 2,
	VERDICT_TX = 3,
	VERDICT_REDIRECT = 4,
	VERDICT_MAX = 5,
};

/* Why a packet was dropped. Mirrored in Go by bpf.XDPDropReason. */
enum drop_reason {
	DROP_ACL_DENY = 0,        /* the source is in a deny list */
	DROP_ACL_NOT_ALLOWED = 1, /* allow-list mode and no allow list holds the source */
	DROP_MALFORMED = 2,       /* truncated or inconsistent L2/L3 headers */
	DROP_LB_NO_BACKEND = 3,   /* a service with no backend that takes new flows */
	DROP_LB_TOO_BIG = 4,      /* too big to encapsulate and fragmenting allowed: XDP cannot fragment */
	DROP_LB_ENCAP = 5,        /* the driver refused the head or tail adjustment */
	DROP_LB_NO_ROUTE = 6,     /* the backend's egress interface is not in lb_tx_ports */
	DROP_REASON_MAX = 8,
};

/* How the ACL stage treats a source. Mirrored in Go by bpf.XDPPolicyMode. */
enum policy_mode {
	POLICY_DENY = 0,  /* drop sources in a deny list unless an allow list holds them */
	POLICY_ALLOW = 1, /* drop IP sources that no allow list holds; deny lists still drop */
};

/* LPM trie key for IPv4 sources. Mirrored in Go by bpf.XDPAclV4Key. */
struct acl_v4_key {
	__u32 prefixlen; /* host order, as the LPM trie requires */
	__u8 addr[4];    /* network order */
};

/* LPM trie key for IPv6 sources. Mirrored in Go by bpf.XDPAclV6Key. */
struct acl_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Hash key of a host entry (an IPv4 /32) of the ACL, in network order.
 * Mirrored in Go by bpf.XDPAclV4HostKey. */
struct acl_v4_host_key {
	__u8 addr[4];
};

/* Hash key of a host entry (an IPv6 /128) of the ACL.
 * Mirrored in Go by bpf.XDPAclV6HostKey. */
struct acl_v6_host_key {
	__u8 addr[16];
};

/* The /24 slots of one /16 of the IPv4 index, by third octet (see
 * ACL_SLOT_* in consts.h). Mirrored in Go by bpf.XDPAclV4Block. */
struct acl_v4_block {
	__u16 slot[256];
};

/* A bucket of the IPv4 host table. Each host is one 64-bit word, read and
 * written whole: its class in the high half, its address as the packet
 * holds it (network order) in the low half; class 0 is a free slot.
 * Mirrored in Go by bpf.XDPAclV4Bucket. */
struct acl_v4_bucket {
	__u64 host[ACL_BUCKET_SLOTS];
};

/* The ACL policy, one entry in an array map. Mirrored in Go by bpf.XDPAclPolicy. */
struct acl_policy {
	__u64 deny_lists;  /* bit i set: list i is a deny list */
	__u64 allow_lists; /* bit i set: list i is an allow list */
	__u32 mode;        /* enum policy_mode */
	__u8 pad[4];
};

/* A packet and byte counter. Mirrored in Go by bpf.XDPCounter. */
struct counter {
	__u64 packets;
	__u64 bytes;
};

/* Per-interface verdict counters, indexed by enum verdict.
 * Mirrored in Go by bpf.XDPIfaceStats. */
struct iface_stats {
	struct counter verdict[VERDICT_MAX];
};

/* How a service forwards. Mirrored in Go by bpf.XDPLbMode. */
enum lb_mode {
	LB_MODE_DSR_IPIP = 0, /* IPIP / IP6IP6 encapsulation to the backend */
	LB_MODE_DSR_L2 = 1,   /* destination MAC rewrite; the backend holds the VIP */
};

/* What the flow hash covers. Mirrored in Go by bpf.XDPLbHash. */
enum lb_hash {
	LB_HASH_5TUPLE = 0,
	LB_HASH_SRC_IP = 1, /* client affinity */
};

/* Backend flags. Mirrored in Go by bpf.XDPBackendFlag. */
enum backend_flag {
	BACKEND_F_DOWN = 1, /* out of service: its flows rehash */
};

/* Addresses of the L4 maps: IPv4 in the first 4 bytes, the rest zero. */

/* Service lookup key. Mirrored in Go by bpf.XDPSvcKey. */
struct svc_key {
	__u8 addr[16];
	__be16 port; /* 0: every port of the VIP */
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family; /* 4 or 6 */
};

/* A service as the datapath sees it. Mirrored in Go by bpf.XDPSvcInfo. */
struct svc_info {
	__u32 id;         /* slot in lb_maglev and lb_svc_stats */
	__u32 table_size; /* M: the length of the service's Maglev table */
	__u8 mode;        /* enum lb_mode */
	__u8 hash;        /* enum lb_hash */
	__u8 pad[6];
};

/* A service by its id: its key and its info, which a connection-table hit
 * reads instead of looking the flow's service up by its key; the key says
 * whether the id still names the flow's service. Mirrored in Go by
 * bpf.XDPSvcEntry. */
struct svc_entry {
	struct svc_key key;  /* family 0: no service has the id */
	struct svc_info info;
	__u8 pad[4];
	__u64 mod_magic;     /* 2^64 / info.table_size, rounded up; 0: none (see slot_of) */
};

/* A backend of one service (a backend in two services has two ids).
 * Mirrored in Go by bpf.XDPBackendInfo. */
struct backend_info {
	__u8 addr[16];
	__u8 mac[6];    /* the next hop towards the backend */
	__u8 family;    /* 4 or 6; 0: the slot is free */
	__u8 flags;     /* enum backend_flag */
	__u32 ifindex;  /* egress interface; 0: the ingress interface */
	__u32 svc;      /* id of the service the backend belongs to */
};

/* A client's flow to a VIP, and an IPv6 flow's connection-table key.
 * Mirrored in Go by bpf.XDPFlowKey. */
struct flow_key {
	__u8 src[16];
	__u8 dst[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

/* A slot of a CPU's flow cache (lb_flow_cache): a TCP flow the connection
 * table holds, with what its entry says. Valid while gen is lb_flow_gen's.
 * Mirrored in Go by bpf.XDPFlowCacheEntry. */
struct flow_cache_entry {
	struct flow_key key;
	__u32 backend;
	__u32 svc;  /* the service's id + 1, as in flow_state */
	__u32 gen;
	__u32 hits; /* packets served, for the FLOW_CACHE_REFRESH turn */
};

/* An IPv4 flow's connection-table key: the flow_key's fields in 16 bytes,
 * which the kernel hashes and compares in less than half the time of the
 * 40 (jhash over 4 words, not 10: ~10 ns a lookup). Mirrored in Go by
 * bpf.XDPFlowKey4. */
struct flow_key4 {
	__be32 src;
	__be32 dst;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* Where a flow goes. Mirrored in Go by bpf.XDPFlowState. */
struct flow_state {
	__u64 seen_ns; /* a UDP flow's last packet (CLOCK_MONOTONIC, see flow_clock), refreshed
			* at most once a second, for its idle timeout; a TCP flow's first */
	__u32 backend;
	__u32 svc;     /* the service's id + 1; 0: not known (an older program's entry,
			* which had padding here) */
};

/* Settings of the L4 stage, one entry. Mirrored in Go by bpf.XDPLbSettings. */
struct lb_settings {
	__u64 udp_timeout_ns;  /* idle UDP flows rehash after this */
	__u8 encap_src4[4];    /* outer source range of IPIP ... */
	__u8 encap_src6[16];   /* ... and of IP6IP6 */
	__u8 encap_src4_bits;  /* its prefix length; the flow hash fills the host bits */
	__u8 encap_src6_bits;
	__u8 pad[6];
};

/* What the L4 stage knows of an interface. Mirrored in Go by bpf.XDPLbIface. */
struct lb_iface {
	__u8 mac[6];
	__u16 mtu; /* 0: unknown, no check */
};

/* Per service and per backend counters. Mirrored in Go by bpf.XDPLbCounter. */
struct lb_counter {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
};

/* Connection-table counters, one per-CPU entry. Mirrored in Go by bpf.XDPLbFlowStats. */
struct lb_flow_stats {
	__u64 hits;
	__u64 misses;      /* new flows, and flows whose backend went down or idled out */
	__u64 icmp_routed; /* ICMP errors about a flow sent to the flow's backend */
	__u64 echo_replies;
	__u64 too_big;     /* ICMP fragmentation-needed / packet-too-big sent */
	__u64 cache_hits;  /* packets a CPU's flow cache sent on (hits counts the table's) */
};

/* An endpoint the sk_lookup program steers to a listener (bpf/sk_lookup.c).
 * The address is laid out as in svc_key: IPv4 in the first 4 bytes, the rest
 * zero. Mirrored in Go by bpf.SkLookupSteerKey. */
struct steer_key {
	__u8 addr[16];
	__be16 port; /* network order; 0: every port of the address */
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family; /* 4 or 6 */
};

/* Counters of the sk_lookup program, one per-CPU entry.
 * Mirrored in Go by bpf.SkLookupSteerStats. */
struct steer_stats {
	__u64 steered;   /* lookups handed to a listener */
	__u64 no_socket; /* an endpoint whose listener slot is empty: normal lookup */
	__u64 refused;   /* bpf_sk_assign failed (family or protocol mismatch): normal lookup */
};

#endif /* SLUICE_STRUCTS_H */
