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

/* The IPv4 index of the ACL (acl.h, maps/aclindex.go): a block of 256 /24
 * slots for each /16, host buckets, and the classes (list masks) they name.
 * A slot is ACL_SLOT_SLOW (0, so a new, zeroed map sends every lookup to the
 * tries) or a class, with ACL_SLOT_HOSTS set when the /24 holds hosts. */
#define ACL_V4_BLOCKS 65536
#define ACL_SLOT_SLOW 0
#define ACL_SLOT_HOSTS 0x8000
#define ACL_SLOT_CLASS 0x7fff
#define ACL_CLASSES 32768
#define ACL_BUCKET_SLOTS 8
#define ACL_BUCKET_BITS 18
#define ACL_BUCKETS (1 << ACL_BUCKET_BITS)
/* Fibonacci hashing: multiply, keep the top bits. Also the VIP filter's. */
#define FIB_HASH_MUL 0x9e3779b1

/* The VIP filter (lb.h): one bit per hash of a destination address. */
#define VIP_FILTER_BITS 16
#define VIP_FILTER_WORDS (1 << (VIP_FILTER_BITS - 6))

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
/* Slots of each CPU's flow cache by default (a power of two; 56 bytes each:
 * 0.9 MB a CPU), and how
 * often a flow the cache serves goes to the connection table instead: once
 * every FLOW_CACHE_REFRESH packets, so that the table's LRU sees the flow in
 * use and keeps it. */
#define FLOW_CACHE_SLOTS (1 << 14)
#define FLOW_CACHE_REFRESH 32
/* The Maglev table size compiled into the inner-map template; each service's
 * table is created with its own size (BPF_F_INNER_MAP). */
#define DEFAULT_MAGLEV_SIZE 65537
/* A Maglev slot that names no backend: the service has none taking new flows. */
#define NO_BACKEND 0xffffffff

/* AF_INET and AF_INET6 (sockets, FIB lookups); <sys/socket.h> is a libc
 * header, not one for BPF. */
#define SL_AF_INET 2
#define SL_AF_INET6 10

/* The decap program's counters: the slots of decap_stats (an enum, so that
 * bpf2go gives them to Go too). */
enum decap_counter {
	DECAP_STRIPPED = 0,
	DECAP_NOT_LOCAL = 1,
	DECAP_STATS_MAX = 2,
};

/* Outer headers of the encapsulations. */
#define IPIP_OVERHEAD 20
#define IP6IP6_OVERHEAD 40

#endif /* SLUICE_CONSTS_H */
