package main

import (
	"github.com/urfave/cli/v2"

	"github.com/sluicelb/sluice/l4"
	"github.com/sluicelb/sluice/mgmt"
)

// detachXDP is a variable so that tests can check what detach asks for.
var detachXDP = l4.Detach

func detachCommand() *cli.Command {
	return &cli.Command{
		Name:  "detach",
		Usage: "remove the XDP program from interfaces; --all also removes every pin (needs no daemon)",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "iface", Usage: "interface to detach from (repeatable)"},
			&cli.BoolFlag{Name: "all", Usage: "detach from every interface and remove all pins"},
			&cli.StringFlag{Name: "bpffs", Value: mgmt.DefaultConfig().BPFFS, Usage: "pin directory under the bpffs"},
		},
		Action: func(c *cli.Context) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			ifaces, all := c.StringSlice("iface"), c.Bool("all")
			if len(ifaces) == 0 && !all {
				return usageError(c, "detach: name --iface IF (repeatable) or --all")
			}
			if len(ifaces) > 0 && all {
				return usageError(c, "detach: --iface and --all exclude each other")
			}
			return detachXDP(c.String("bpffs"), ifaces, all)
		},
	}
}
