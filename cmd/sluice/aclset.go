package main

import (
	"os"

	"github.com/urfave/cli/v2"
)

func aclSetCommand() *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "replace a whole list from a file: one IP or CIDR per line, # comments (only the difference is applied)",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{
			outputFlag(),
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "the list file, or - for stdin (required)"},
			&cli.StringFlag{Name: "kind", Usage: "deny or allow (default: deny for a new list, unchanged for an existing one)"},
			ifMatchOf("list"),
		},
		Action: func(c *cli.Context) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			if !c.IsSet("file") {
				return usageError(c, "acl set: --file PATH or --file - is required")
			}
			if err := checkKind(c); err != nil {
				return err
			}
			api, err := apiClient(c)
			if err != nil {
				return err
			}
			in, size := c.App.Reader, int64(0)
			if path := c.String("file"); path != "-" {
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				defer f.Close()
				if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
					size = st.Size()
				}
				in = f
			}
			if w, ok := c.App.ErrWriter.(*os.File); ok && isTerminal(w) {
				p := newProgress(in, size, w)
				defer p.finish()
				in = p
			}
			// No timeout: a million-line list may take a while to send.
			r, err := api.SyncList(c.Context, c.Args().First(), c.String("kind"), in, c.String("if-match"))
			if err != nil {
				return err
			}
			return printSync(c, r)
		},
	}
}
