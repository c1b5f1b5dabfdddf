package main

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/sluicelb/sluice/l7/accesslog"
	"github.com/sluicelb/sluice/mgmt/client"
)

func logCommand() *cli.Command {
	return &cli.Command{
		Name:   "log",
		Usage:  "the L7 proxy's access log",
		Action: groupAction,
		Subcommands: []*cli.Command{
			logShowCommand(),
			logSetCommand(),
		},
	}
}

// logFormats are the values of --format.
var logFormats = []string{"combined", "json", "template"}

func logShowCommand() *cli.Command {
	return &cli.Command{
		Name: "show", Usage: "show the access log's settings and counters", Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			st, err := api.AccessLog(ctx)
			if err != nil {
				return err
			}
			return render(c, st, func(w io.Writer) {
				accessLogTable(w, st.Config)
				if st.Stats == nil {
					return
				}
				fmt.Fprintln(w)
				row(w, "WRITTEN", "DROPPED", "ERRORS")
				row(w, human(st.Stats.Written), human(st.Stats.Dropped), human(st.Stats.Errors))
			})
		}),
	}
}

func accessLogTable(w io.Writer, a client.AccessLog) {
	format := a.Format
	if format == "" {
		format = "combined"
	}
	row(w, "enabled", yesNo(a.Enabled))
	row(w, "format", format)
	if a.Template != "" {
		row(w, "template", a.Template)
	}
	switch {
	case a.Path != "":
		row(w, "path", a.Path)
	case a.Syslog != "":
		row(w, "syslog", a.Syslog)
	}
	row(w, "buffer", orDefault(a.Buffer, accesslog.DefaultBuffer))
}

func logSetCommand() *cli.Command {
	return &cli.Command{
		Name:  "set",
		Usage: "change the access log: what the flags say changes, the rest stays; it is on unless --off",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "off", Usage: "stop logging (the settings stay for the next log set)"},
			&cli.StringFlag{Name: "format", Usage: "combined (the nginx one), json (a JSON object a line) or template"},
			&cli.StringFlag{Name: "template", Usage: "the line of --format template, with $variables as nginx's log_format (implies --format template)"},
			&cli.StringFlag{Name: "path", Usage: "log to this `FILE` (on the daemon's host)"},
			&cli.StringFlag{Name: "syslog", Usage: "log to this syslog `URL`: udp://host:port, tcp://host:port, unix:///dev/log or unixgram:///dev/log"},
			&cli.IntFlag{Name: "buffer", Usage: "entries that wait for the writer before new ones are dropped (the proxy never waits; 0: the default)", DefaultText: "unchanged"},
			outputFlag(),
		},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			if err := checkLogFlags(c); err != nil {
				return err
			}
			cur, err := api.AccessLog(ctx)
			if err != nil {
				return err
			}
			got, err := api.SetAccessLog(ctx, applyLogFlags(c, cur.Config))
			if err != nil {
				return err
			}
			return render(c, got, func(w io.Writer) { accessLogTable(w, got) })
		}),
	}
}

// checkLogFlags is a usage error for flags of `log set` that contradict
// each other or have bad values; it runs before anything is sent.
func checkLogFlags(c *cli.Context) error {
	if c.IsSet("path") && c.IsSet("syslog") {
		return usageError(c, "log set: --path and --syslog exclude each other")
	}
	if f := c.String("format"); c.IsSet("format") && !slices.Contains(logFormats, f) {
		return usageError(c, "log set: --format %q: want combined, json or template", f)
	}
	if c.IsSet("template") && c.IsSet("format") && c.String("format") != "template" {
		return usageError(c, "log set: --template needs --format template")
	}
	if c.Int("buffer") < 0 {
		return usageError(c, "log set: --buffer %d: must not be negative", c.Int("buffer"))
	}
	return nil
}

// applyLogFlags changes a as the flags of `log set` say.
func applyLogFlags(c *cli.Context, a client.AccessLog) client.AccessLog {
	a.Enabled = !c.Bool("off")
	if c.IsSet("format") {
		a.Format = c.String("format")
	}
	if c.IsSet("template") {
		a.Format, a.Template = "template", c.String("template")
	}
	if c.IsSet("path") {
		a.Path, a.Syslog = c.String("path"), ""
	}
	if c.IsSet("syslog") {
		a.Path, a.Syslog = "", c.String("syslog")
	}
	if c.IsSet("buffer") {
		a.Buffer = c.Int("buffer")
	}
	return a
}
