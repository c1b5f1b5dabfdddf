package main

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/sluicelb/sluice/l7/tlcp"
)

func tlcpCommand() *cli.Command {
	return &cli.Command{
		Name:   "tlcp",
		Usage:  "国密 TLCP helpers",
		Action: groupAction,
		Subcommands: []*cli.Command{{
			Name:      "gen-certs",
			Usage:     "write a test CA and an SM2 signing and encryption certificate for a name (to try TLCP; not for production)",
			ArgsUsage: "DIR",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "name", Value: "localhost", Usage: "the server name the certificates are for"},
			},
			Action: func(c *cli.Context) error {
				if err := wantArgs(c, 1, 1); err != nil {
					return err
				}
				dir, name := c.Args().First(), c.String("name")
				if err := tlcp.GenerateTestPKI(dir, name); err != nil {
					return err
				}
				base := filepath.Join(dir, name)
				fmt.Fprintf(c.App.Writer, "wrote %s/ca.crt and the %s-sign and %s-enc pairs; serve them with\n"+
					"  sluice cert set %s --kind tlcp --sign-cert %s-sign.crt --sign-key %s-sign.key --enc-cert %s-enc.crt --enc-key %s-enc.key\n",
					dir, name, name, name, base, base, base, base)
				return nil
			},
		}},
	}
}
