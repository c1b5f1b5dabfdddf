package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sluicelb/sluice/mgmt/client"
)

func aclCommand() *cli.Command {
	return &cli.Command{
		Name:   "acl",
		Usage:  "IP lists, the ACL policy and the protect prefixes",
		Action: groupAction,
		Subcommands: []*cli.Command{
			aclPolicyCommand(),
			aclProtectCommand(),
			aclListCommand(),
			aclSetCommand(),
			aclPatchCommand("add", "add entries to a list, creating it if missing"),
			aclPatchCommand("del", "remove entries from a list"),
			aclShowCommand(),
			aclDropCommand(),
			aclCheckCommand(),
		},
	}
}

func aclPolicyCommand() *cli.Command {
	return &cli.Command{
		Name: "policy", Usage: "show the ACL mode, or set it: deny (drop what deny lists hold) or allow (drop what no allow list holds)",
		ArgsUsage: "[deny|allow]", Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 0, 1); err != nil {
				return err
			}
			var p client.Policy
			if c.NArg() == 1 {
				mode := c.Args().First()
				if mode != "deny" && mode != "allow" {
					return usageError(c, "acl policy %q: want deny or allow", mode)
				}
				var err error
				if p, err = api.SetPolicy(ctx, mode); err != nil {
					return err
				}
			} else {
				a, err := api.ACL(ctx)
				if err != nil {
					return err
				}
				p.Mode = a.Policy
			}
			return render(c, p, func(w io.Writer) { row(w, "policy", p.Mode) })
		}),
	}
}

func aclProtectCommand() *cli.Command {
	return &cli.Command{
		Name: "protect", Usage: "show the prefixes that are never dropped, or replace them",
		ArgsUsage: "[CIDR…]",
		Flags:     []cli.Flag{outputFlag(), &cli.BoolFlag{Name: "clear", Usage: "remove every protect prefix"}},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			var p client.Protect
			switch {
			case c.Bool("clear") && c.NArg() > 0:
				return usageError(c, "acl protect: --clear takes no prefixes")
			case c.Bool("clear") || c.NArg() > 0:
				var err error
				if p, err = api.SetProtect(ctx, c.Args().Slice()); err != nil {
					return err
				}
			default:
				a, err := api.ACL(ctx)
				if err != nil {
					return err
				}
				p.Prefixes = a.Protect
			}
			if p.Prefixes == nil {
				p.Prefixes = []string{}
			}
			return render(c, p, func(w io.Writer) {
				if len(p.Prefixes) == 0 {
					fmt.Fprintln(w, "no protect prefixes")
					return
				}
				row(w, "PROTECT")
				for _, pr := range p.Prefixes {
					row(w, pr)
				}
			})
		}),
	}
}

func aclListCommand() *cli.Command {
	return &cli.Command{
		Name: "list", Usage: "show the policy, the protect prefixes and the IP lists", Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			a, err := api.ACL(ctx)
			if err != nil {
				return err
			}
			return render(c, a, func(w io.Writer) {
				protect := strings.Join(a.Protect, ", ")
				if protect == "" {
					protect = "-"
				}
				row(w, "policy", a.Policy)
				row(w, "protect", protect)
				fmt.Fprintln(w)
				if len(a.Lists) == 0 {
					fmt.Fprintln(w, "no lists")
					return
				}
				row(w, "NAME", "KIND", "ENTRIES", "VERSION")
				for _, l := range a.Lists {
					row(w, l.Name, l.Kind, grouped(l.Entries), l.Version)
				}
			})
		}),
	}
}

func aclPatchCommand(name, usage string) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, ArgsUsage: "NAME CIDR…",
		Flags: []cli.Flag{outputFlag(), ifMatchOf("list"),
			&cli.StringFlag{Name: "kind", Usage: "deny or allow, for a list that does not exist yet (default deny)"}},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 2, -1); err != nil {
				return err
			}
			if err := checkKind(c); err != nil {
				return err
			}
			list, entries := c.Args().First(), c.Args().Tail()
			var add, remove []string
			if name == "add" {
				add = entries
			} else {
				remove = entries
			}
			r, err := api.PatchList(ctx, list, c.String("kind"), add, remove, c.String("if-match"))
			if err != nil {
				return err
			}
			return printSync(c, r)
		}),
	}
}

func checkKind(c *cli.Context) error {
	if k := c.String("kind"); k != "" && k != "deny" && k != "allow" {
		return usageError(c, "--kind %q: want deny or allow", k)
	}
	return nil
}

// printSync prints the answer of a list write.
func printSync(c *cli.Context, r client.SyncResult) error {
	return render(c, r, func(w io.Writer) {
		row(w, "LIST", "KIND", "VERSION", "ADDED", "REMOVED", "ENTRIES", "TOOK")
		row(w, r.Name, r.Kind, r.Version, grouped(r.Added), grouped(r.Removed), grouped(r.Entries), fmt.Sprintf("%.1fms", r.DurationMS))
	})
}

func aclShowCommand() *cli.Command {
	return &cli.Command{
		Name: "show", Usage: "print the entries of a list (the table form is a valid list file)", ArgsUsage: "NAME",
		Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			name := c.Args().First()
			if c.String("output") == "json" {
				l, err := api.GetList(ctx, name)
				if err != nil {
					return err
				}
				return render(c, l, nil)
			}
			// The table form streams the entries: a list can hold millions.
			a, err := api.ACL(ctx)
			if err != nil {
				return err
			}
			for _, l := range a.Lists {
				if l.Name == name {
					fmt.Fprintf(c.App.Writer, "# list %s (%s), version %s, %s entries\n", l.Name, l.Kind, l.Version, grouped(l.Entries))
				}
			}
			_, err = api.WriteList(ctx, name, c.App.Writer)
			return err
		}),
	}
}

func aclDropCommand() *cli.Command {
	return &cli.Command{
		Name: "drop", Usage: "delete a list", ArgsUsage: "NAME", Flags: []cli.Flag{ifMatchOf("list")},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			if err := api.DeleteList(ctx, c.Args().First(), c.String("if-match")); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "deleted list %s\n", c.Args().First())
			return nil
		}),
	}
}

func aclCheckCommand() *cli.Command {
	return &cli.Command{
		Name: "check", Usage: "tell what the datapath does with packets from an address, and why", ArgsUsage: "IP",
		Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			r, err := api.Check(ctx, c.Args().First())
			if err != nil {
				return err
			}
			if r.Lists == nil {
				r.Lists = []client.CheckMatch{}
			}
			return render(c, r, func(w io.Writer) {
				row(w, "ip", r.IP)
				row(w, "verdict", r.Verdict)
				row(w, "reason", r.Reason)
				if len(r.Lists) == 0 {
					return
				}
				fmt.Fprintln(w)
				row(w, "LIST", "KIND", "PREFIX")
				for _, m := range r.Lists {
					row(w, m.Name, m.Kind, m.Prefix)
				}
			})
		}),
	}
}
