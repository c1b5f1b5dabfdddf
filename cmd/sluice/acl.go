package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sluicelb/sluice/mgmt/client"
)

func aclCommand() *cli.Command {
	return &cli.Command{
		Name:  "acl",
		Usage: "IP lists, policy and protect prefixes",
		Subcommands: []*cli.Command{
			{
				Name: "policy", Usage: "show or set the ACL mode", ArgsUsage: "[deny|allow]", Flags: []cli.Flag{outputFlag},
				Action: withAPI(func(c *cli.Context, api *client.Client, ctx context.Context) error {
					if c.NArg() > 0 {
						if err := api.SetPolicy(ctx, c.Args().First()); err != nil {
							return err
						}
					}
					a, err := api.ACL(ctx)
					if err != nil {
						return err
					}
					return render(c, map[string]string{"mode": a.Policy}, func(w io.Writer) { row(w, "policy", a.Policy) })
				}),
			},
			{
				Name: "protect", Usage: "show or replace the prefixes that are never dropped", ArgsUsage: "[CIDR…]",
				Flags: []cli.Flag{outputFlag, &cli.BoolFlag{Name: "clear", Usage: "remove every protect prefix"}},
				Action: withAPI(func(c *cli.Context, api *client.Client, ctx context.Context) error {
					if c.NArg() > 0 || c.Bool("clear") {
						if err := api.SetProtect(ctx, c.Args().Slice()); err != nil {
							return err
						}
					}
					a, err := api.ACL(ctx)
					if err != nil {
						return err
					}
					return render(c, map[string][]string{"prefixes": a.Protect}, func(w io.Writer) {
						row(w, "PROTECT")
						for _, p := range a.Protect {
							row(w, p)
						}
					})
				}),
			},
			{
				Name: "list", Usage: "list the IP lists", Flags: []cli.Flag{outputFlag},
				Action: withAPI(func(c *cli.Context, api *client.Client, ctx context.Context) error {
					a, err := api.ACL(ctx)
					if err != nil {
						return err
					}
					return render(c, a, func(w io.Writer) {
						row(w, "policy:", a.Policy)
						row(w, "")
						row(w, "NAME", "KIND", "ENTRIES", "VERSION")
						for _, l := range a.Lists {
							row(w, l.Name, l.Kind, l.Entries, l.Version)
						}
					})
				}),
			},
			setCommand(),
			{
				Name: "add", Usage: "add entries to a list (creating it)", ArgsUsage: "NAME CIDR…",
				Flags:  []cli.Flag{outputFlag, &cli.StringFlag{Name: "if-match", Usage: "only if the list is at this version"}},
				Action: patchAction(true),
			},
			{
				Name: "del", Usage: "remove entries from a list", ArgsUsage: "NAME CIDR…",
				Flags:  []cli.Flag{outputFlag, &cli.StringFlag{Name: "if-match", Usage: "only if the list is at this version"}},
				Action: patchAction(false),
			},
			{
				Name: "show", Usage: "print a list's entries", ArgsUsage: "NAME", Flags: []cli.Flag{outputFlag},
				Action: withAPI(func(c *cli.Context, api *client.Client, ctx context.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("acl show: want NAME", 2)
					}
					l, err := api.GetList(ctx, c.Args().First())
					if err != nil {
						return err
					}
					return render(c, l, func(w io.Writer) {
						fmt.Fprintf(w, "# %s (%s), version %s, %d entries\n", l.Name, l.Kind, l.Version, len(l.Entries))
						for _, e := range l.Entries {
							fmt.Fprintln(w, e)
						}
					})
				}),
			},
			{
				Name: "drop", Usage: "delete a list", ArgsUsage: "NAME",
				Flags: []cli.Flag{&cli.StringFlag{Name: "if-match", Usage: "only if the list is at this version"}},
				Action: withAPI(func(c *cli.Context, api *client.Client, ctx context.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("acl drop: want NAME", 2)
					}
					return api.DeleteList(ctx, c.Args().First(), c.String("if-match"))
				}),
			},
			{
				Name: "check", Usage: "tell what happens to packets from an address, and why", ArgsUsage: "IP",
				Flags: []cli.Flag{outputFlag},
				Action: withAPI(func(c *cli.Context, api *client.Client, ctx context.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("acl check: want IP", 2)
					}
					r, err := api.Check(ctx, c.Args().First())
					if err != nil {
						return err
					}
					return render(c, r, func(w io.Writer) {
						row(w, r.IP, r.Verdict, "("+r.Reason+")")
						if len(r.Lists) > 0 {
							row(w, "")
							row(w, "LIST", "KIND", "PREFIX")
							for _, m := range r.Lists {
								row(w, m.Name, m.Kind, m.Prefix)
							}
						}
					})
				}),
			},
		},
	}
}

// withAPI gives an action an API client and a bounded context.
func withAPI(fn func(*cli.Context, *client.Client, context.Context) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		api, err := apiClient(c)
		if err != nil {
			return err
		}
		ctx, cancel := callContext(c)
		defer cancel()
		return fn(c, api, ctx)
	}
}

func patchAction(add bool) cli.ActionFunc {
	return withAPI(func(c *cli.Context, api *client.Client, ctx context.Context) error {
		if c.NArg() < 2 {
			return cli.Exit("want NAME CIDR…", 2)
		}
		name, entries := c.Args().First(), c.Args().Tail()
		var r client.SyncResult
		var err error
		if add {
			r, err = api.PatchList(ctx, name, entries, nil, c.String("if-match"))
		} else {
			r, err = api.PatchList(ctx, name, nil, entries, c.String("if-match"))
		}
		if err != nil {
			return err
		}
		return printSync(c, r)
	})
}

func printSync(c *cli.Context, r client.SyncResult) error {
	return render(c, r, func(w io.Writer) {
		row(w, "LIST", "KIND", "VERSION", "ADDED", "REMOVED", "ENTRIES", "TOOK")
		row(w, r.Name, r.Kind, r.Version, r.Added, r.Removed, r.Entries, fmt.Sprintf("%.1fms", r.DurationMS))
	})
}

func setCommand() *cli.Command {
	return &cli.Command{
		Name: "set", Usage: "replace a whole list from a file (one IP or CIDR per line)", ArgsUsage: "NAME",
		Flags: []cli.Flag{
			outputFlag,
			&cli.StringFlag{Name: "kind", Usage: "deny or allow"},
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Required: true, Usage: "list file, or - for stdin"},
			&cli.StringFlag{Name: "if-match", Usage: "only if the list is at this version"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("acl set: want NAME", 2)
			}
			api, err := apiClient(c)
			if err != nil {
				return err
			}
			var in io.Reader = os.Stdin
			var size int64
			if f := c.String("file"); f != "-" {
				fh, err := os.Open(f)
				if err != nil {
					return err
				}
				defer fh.Close()
				if st, err := fh.Stat(); err == nil {
					size = st.Size()
				}
				in = fh
			}
			if w, ok := c.App.ErrWriter.(*os.File); ok && isTerminal(w) {
				p := newProgress(in, size, w)
				defer p.done()
				in = p
			}
			r, err := api.SyncList(c.Context, c.Args().First(), c.String("kind"), in, c.String("if-match"))
			if err != nil {
				return err
			}
			return printSync(c, r)
		},
	}
}

func completionCommand() *cli.Command {
	return &cli.Command{
		Name: "completion", Usage: "print a shell completion script", ArgsUsage: "bash|zsh",
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "bash":
				fmt.Fprint(c.App.Writer, bashCompletion)
			case "zsh":
				fmt.Fprint(c.App.Writer, zshCompletion)
			default:
				return cli.Exit("completion: want bash or zsh", 2)
			}
			return nil
		},
	}
}

const bashCompletion = `# sluice bash completion: source <(sluice completion bash)
_sluice_complete() {
  local cur opts
  COMPREPLY=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  opts=$( "${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null )
  COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
  return 0
}
complete -o default -F _sluice_complete sluice
`

var zshCompletion = strings.ReplaceAll(`#compdef sluice
# sluice zsh completion: source <(sluice completion zsh)
_sluice() {
  local -a opts
  opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion)}")
  _describe 'values' opts
}
compdef _sluice sluice
`, "\t", "  ")
