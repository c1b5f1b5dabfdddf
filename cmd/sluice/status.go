package main

import (
	"io"
	"sort"
	"time"

	"github.com/urfave/cli/v2"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the daemon's version, uptime and attached interfaces",
		Flags: []cli.Flag{outputFlag},
		Action: func(c *cli.Context) error {
			api, err := apiClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := callContext(c)
			defer cancel()
			st, err := api.Status(ctx)
			if err != nil {
				return err
			}
			return render(c, st, func(w io.Writer) {
				row(w, "version", st.Version)
				row(w, "uptime", (time.Duration(st.UptimeSeconds) * time.Second).String())
				row(w, "bpffs", st.BPFFS)
				row(w, "")
				row(w, "IFACE", "IFINDEX", "XDP MODE", "PROGRAM", "LINK")
				for _, i := range st.Interfaces {
					row(w, i.Name, i.Ifindex, i.XDPMode, i.ProgramID, i.LinkID)
				}
			})
		},
	}
}

var verdictOrder = []string{"pass", "drop", "tx", "redirect", "aborted"}

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:  "stats",
		Usage: "show packets per verdict, drops per reason and per list",
		Flags: []cli.Flag{outputFlag},
		Action: func(c *cli.Context) error {
			api, err := apiClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := callContext(c)
			defer cancel()
			st, err := api.Stats(ctx)
			if err != nil {
				return err
			}
			return render(c, st, func(w io.Writer) {
				row(w, "IFACE", "VERDICT", "PACKETS", "BYTES")
				for _, i := range st.Interfaces {
					for _, v := range verdictOrder {
						n := i.Verdicts[v]
						row(w, i.Name, v, human(n.Packets), humanBytes(n.Bytes))
					}
				}
				row(w, "")
				row(w, "DROP REASON", "PACKETS", "BYTES")
				reasons := make([]string, 0, len(st.Drops))
				for r := range st.Drops {
					reasons = append(reasons, r)
				}
				sort.Strings(reasons)
				for _, r := range reasons {
					row(w, r, human(st.Drops[r].Packets), humanBytes(st.Drops[r].Bytes))
				}
				row(w, "")
				row(w, "LIST", "KIND", "ENTRIES", "DROPPED", "BYTES")
				for _, l := range st.Lists {
					row(w, l.Name, l.Kind, l.Entries, human(l.Drops.Packets), humanBytes(l.Drops.Bytes))
				}
			})
		},
	}
}
