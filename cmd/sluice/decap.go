package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sluicelb/sluice/l4"
)

func decapCommand() *cli.Command {
	return &cli.Command{
		Name: "decap",
		Usage: "on a backend: strip the IPIP / IP6IP6 header of dsr-ipip traffic at the NIC " +
			"(no ipip module needed); the VIPs must be on the backend's loopback",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "iface", Usage: "interface the tunnelled traffic arrives on (repeatable)"},
			&cli.StringSliceFlag{Name: "vip", Usage: "decapsulate only traffic to this VIP (repeatable; default: every local destination, " +
				"or every one when the interface does not forward)"},
			&cli.StringFlag{Name: "xdp-mode", Value: "auto", Usage: "auto, native or generic"},
			&cli.StringFlag{Name: "bpffs", Value: l4.DefaultDecapPinDir, Usage: "pin directory under the bpffs"},
			&cli.BoolFlag{Name: "detach", Usage: "remove the program from the interfaces instead"},
			&cli.BoolFlag{Name: "show", Usage: "show where the program is attached, what it strips and its counters"},
			outputFlag(),
		},
		Action: func(c *cli.Context) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			if c.Bool("show") {
				st, err := l4.ReadDecap(c.String("bpffs"))
				if err != nil {
					return err
				}
				return render(c, st, func(w io.Writer) { decapTable(w, st) })
			}
			if len(c.StringSlice("iface")) == 0 {
				return usageError(c, "decap: give --iface (or --show)")
			}
			if c.Bool("detach") {
				return detachXDP(c.String("bpffs"), c.StringSlice("iface"), false)
			}
			mode, err := l4.ParseXDPMode(c.String("xdp-mode"))
			if err != nil {
				return usageError(c, "decap: %v", err)
			}
			var vips []netip.Addr
			for _, s := range c.StringSlice("vip") {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return usageError(c, "decap: --vip %q: %v", s, err)
				}
				vips = append(vips, a)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			for _, iface := range c.StringSlice("iface") {
				a, err := l4.Decap(c.String("bpffs"), iface, vips, mode, log)
				if err != nil {
					return err
				}
				log.Info("decap attached", "iface", a.Iface, "mode", a.Mode, "program_id", a.ProgramID)
			}
			return nil
		},
	}
}

func decapTable(w io.Writer, st l4.DecapState) {
	row(w, "IFACE", "MODE", "PROGRAM")
	for _, a := range st.Interfaces {
		row(w, a.Iface, a.Mode, a.ProgramID)
	}
	fmt.Fprintln(w)
	strips := "nothing"
	switch {
	case st.Local:
		strips = "tunnels to local destinations (what the host does not route on)"
	case len(st.VIPs) > 0:
		vips := make([]string, len(st.VIPs))
		for i, a := range st.VIPs {
			vips[i] = a.String()
		}
		strips = "tunnels to " + strings.Join(vips, ", ")
	}
	fmt.Fprintln(w, "strips "+strips)
	fmt.Fprintln(w)
	row(w, "TUNNELS", "PACKETS", "BYTES")
	row(w, "stripped", st.Stripped.Packets, humanBytes(st.Stripped.Bytes))
	row(w, "not local (passed)", st.NotLocal.Packets, humanBytes(st.NotLocal.Bytes))
}
