package main

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/urfave/cli/v2"

	"github.com/sluicelb/sluice/mgmt/client"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the daemon's version, uptime and attached interfaces",
		Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			st, err := api.Status(ctx)
			if err != nil {
				return err
			}
			return render(c, st, func(w io.Writer) {
				row(w, "version", st.Version)
				if st.PID != 0 {
					row(w, "pid", st.PID)
				}
				row(w, "uptime", humanDuration(st.UptimeSeconds))
				row(w, "bpffs", st.BPFFS)
				fmt.Fprintln(w)
				if len(st.Interfaces) == 0 {
					fmt.Fprintln(w, "no interfaces attached")
					return
				}
				row(w, "IFACE", "IFINDEX", "XDP MODE", "PROGRAM ID", "LINK ID")
				for _, i := range st.Interfaces {
					row(w, i.Name, i.Ifindex, i.XDPMode, i.ProgramID, i.LinkID)
				}
			})
		}),
	}
}

// verdictOrder is the order of the verdict rows of `sluice stats`.
var verdictOrder = []string{"pass", "drop", "tx", "redirect", "aborted"}

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:  "stats",
		Usage: "show packets per verdict and interface, drops per reason and per list",
		Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			st, err := api.Stats(ctx)
			if err != nil {
				return err
			}
			return render(c, st, func(w io.Writer) { statsTable(w, st) })
		}),
	}
}

func statsTable(w io.Writer, st client.Stats) {
	row(w, "IFACE", "VERDICT", "PACKETS", "BYTES")
	for _, i := range st.Interfaces {
		for _, v := range sortedKeys(i.Verdicts, verdictOrder) {
			n := i.Verdicts[v]
			row(w, i.Name, v, human(n.Packets), humanBytes(n.Bytes))
		}
	}
	fmt.Fprintln(w)
	row(w, "DROP REASON", "PACKETS", "BYTES")
	for _, r := range sortedKeys(st.Drops, nil) {
		row(w, r, human(st.Drops[r].Packets), humanBytes(st.Drops[r].Bytes))
	}
	if len(st.Lists) > 0 {
		fmt.Fprintln(w)
		row(w, "LIST", "KIND", "ENTRIES", "DROPPED", "BYTES")
		for _, l := range st.Lists {
			row(w, l.Name, l.Kind, grouped(l.Entries), human(l.Drops.Packets), humanBytes(l.Drops.Bytes))
		}
	}
	if st.L4 == nil || len(st.L4.Services) == 0 {
		return
	}
	fmt.Fprintln(w)
	row(w, "SERVICE", "BACKEND", "PACKETS", "BYTES", "NEW FLOWS")
	for _, s := range st.L4.Services {
		row(w, s.Name, "*", human(s.Counters.Packets), humanBytes(s.Counters.Bytes), human(s.Counters.NewFlows))
		for _, be := range sortedKeys(s.Backends, nil) {
			n := s.Backends[be]
			row(w, "", be, human(n.Packets), humanBytes(n.Bytes), human(n.NewFlows))
		}
	}
	fmt.Fprintln(w)
	ct := st.L4.Conntrack
	row(w, "CONNTRACK", "ENTRIES", "HITS", "FROM CACHE", "MISSES", "ICMP ROUTED")
	row(w, "", grouped(st.L4.Entries), human(ct.Hits), human(ct.CacheHits), human(ct.Misses), human(ct.ICMPRouted))
}

// sortedKeys returns the keys of m: first those of order (all of them, even
// when missing from m), then the others sorted.
func sortedKeys[V any](m map[string]V, order []string) []string {
	keys := append([]string(nil), order...)
	var rest []string
	for k := range m {
		known := false
		for _, o := range order {
			known = known || o == k
		}
		if !known {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(keys, rest...)
}
