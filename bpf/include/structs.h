/* structs.h: every struct and enum shared between the BPF programs and Go. */
#ifndef SLUICE_STRUCTS_H
#define SLUICE_STRUCTS_H

#include <linux/types.h>

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

#endif /* SLUICE_STRUCTS_H */
