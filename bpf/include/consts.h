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

#endif /* SLUICE_CONSTS_H */
