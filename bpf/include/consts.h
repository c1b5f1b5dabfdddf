/* consts.h: sizes and limits of the datapath; each can be overridden at build time. */
#ifndef SLUICE_CONSTS_H
#define SLUICE_CONSTS_H

/* A stage returns an XDP_* verdict, or CONTINUE to hand the packet to the next stage. */
#define CONTINUE -1

/* Lists are bits of a __u64; the top bit is reserved for the protect prefixes. */
#define MAX_LISTS 64
#define PROTECT_LIST 63
#define PROTECT_BIT (1ULL << PROTECT_LIST)

/* Default capacity of each LPM trie; the loader may change it before load. */
#ifndef MAX_ACL_ENTRIES
#define MAX_ACL_ENTRIES (1 << 22)
#endif

/* Interfaces are counted in slot ifindex & (MAX_IFINDEX - 1); the daemon refuses
 * to attach two interfaces that share a slot. Must be a power of two. */
#ifndef MAX_IFINDEX
#define MAX_IFINDEX 4096
#endif

#ifndef MAX_VLAN_DEPTH
#define MAX_VLAN_DEPTH 2
#endif

#ifndef MAX_IPV6_EXT_HDRS
#define MAX_IPV6_EXT_HDRS 8
#endif

/* L4 capacities; the loader may change the map sizes before load. */
#ifndef MAX_SERVICES
#define MAX_SERVICES 4096
#endif
#ifndef MAX_BACKENDS
#define MAX_BACKENDS (1 << 18)
#endif
#ifndef MAX_FLOWS
#define MAX_FLOWS (1 << 20)
#endif
/* The Maglev table size compiled into the inner-map template; each service's
 * table is created with its own size (BPF_F_INNER_MAP). */
#define DEFAULT_MAGLEV_SIZE 65537
/* A Maglev slot that names no backend: the service has none taking new flows. */
#define NO_BACKEND 0xffffffff

/* The decap program's counters. */
#define DECAP_STRIPPED 0
#define DECAP_NOT_LOCAL 1
#define DECAP_STATS_MAX 2

/* Outer headers of the encapsulations. */
#define IPIP_OVERHEAD 20
#define IP6IP6_OVERHEAD 40

#endif /* SLUICE_CONSTS_H */
