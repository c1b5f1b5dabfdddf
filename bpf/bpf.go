// Package bpf holds the C sources of Sluice's BPF programs and the objects
// bpf2go compiled from them. It only loads objects; typed access to the maps
// lives in package maps.
package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
)

//go:generate go tool bpf2go -tags linux -target bpfel -type verdict -type drop_reason -type policy_mode -type acl_v4_key -type acl_v6_key -type acl_v4_host_key -type acl_v6_host_key -type acl_v4_block -type acl_v4_bucket -type acl_policy -type counter -type iface_stats -type lb_mode -type lb_hash -type backend_flag -type svc_key -type svc_info -type svc_entry -type backend_info -type flow_key -type flow_key4 -type flow_state -type lb_settings -type lb_iface -type lb_counter -type lb_flow_stats -type flow_cache_entry XDP xdp.c -- -O2 -g -Wall -Werror -I./include
//go:generate go tool bpf2go -tags linux -target bpfel -type decap_counter Decap decap.c -- -O2 -g -Wall -Werror -I./include
//go:generate go tool bpf2go -tags linux -target bpfel -type steer_key -type steer_stats -output-stem sk_lookup SkLookup sk_lookup.c -- -O2 -g -Wall -Werror -I./include

// SetFlowCacheSlots sizes each CPU's flow cache (lb_flow_cache): n slots of
// 56 bytes, a power of two; 0 keeps the compiled size.
func SetFlowCacheSlots(spec *ebpf.CollectionSpec, n uint32) error {
	if n == 0 {
		return nil
	}
	if n&(n-1) != 0 {
		return fmt.Errorf("flow cache of %d slots: want a power of two", n)
	}
	spec.Maps[XDPMapLbFlowCache].MaxEntries = n
	return spec.Variables[XDPVarLbFlowCacheSlots].Set(n)
}

// SetFlowTableSize sizes the connection table: lb_flows4 holds v4 IPv4
// flows, lb_flows v6 IPv6 ones; 0 keeps a table's compiled size.
func SetFlowTableSize(spec *ebpf.CollectionSpec, v4, v6 uint32) {
	for name, n := range map[string]uint32{XDPMapLbFlows4: v4, XDPMapLbFlows: v6} {
		if n > 0 {
			spec.Maps[name].MaxEntries = n
		}
	}
}
