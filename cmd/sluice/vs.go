package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sluicelb/sluice/mgmt/client"
)

// ifMatchOf is the --if-match flag of every versioned object (what names it).
func ifMatchOf(what string) cli.Flag {
	return &cli.StringFlag{Name: "if-match", Usage: "only if the " + what + " is at this version (or * for any existing one)"}
}

// isNotFound reports whether err is a 404 answer of the API.
func isNotFound(err error) bool {
	var ae *client.APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// orDash renders the zero value of a setting the daemon defaults as "-".
func orDash[T comparable](v T) any {
	var zero T
	if v == zero {
		return "-"
	}
	return v
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func vsCommand() *cli.Command {
	return &cli.Command{
		Name:   "vs",
		Usage:  "L7 virtual servers: the host names an l7 service answers for, and their locations",
		Action: groupAction,
		Subcommands: []*cli.Command{
			vsSetCommand(),
			vsListCommand(),
			vsShowCommand(),
			vsDelCommand(),
		},
	}
}

func vsSetCommand() *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "create a virtual server or replace its settings; its locations stay",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "service", Required: true, Usage: "the l7 service (svc set --mode l7) it listens on"},
			&cli.StringSliceFlag{Name: "host", Usage: "host name or *.domain it answers for (repeatable; none: the service's default)"},
			&cli.BoolFlag{Name: "tls", Usage: "terminate TLS (and TLCP) with the certificates of sluice cert"},
			ifMatchOf("virtual server"), outputFlag(),
		},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			v := client.VServer{Name: c.Args().First(), Service: c.String("service"), Hosts: c.StringSlice("host"), TLS: c.Bool("tls")}
			ifMatch := c.String("if-match")
			// Keep the locations, and replace only the version they were read at.
			cur, err := api.GetVServer(ctx, v.Name)
			switch {
			case err == nil:
				v.Locations = cur.Locations
				if ifMatch == "" {
					ifMatch = strconv.FormatUint(cur.Version, 10)
				}
			case !isNotFound(err):
				return err
			}
			got, err := api.SetVServer(ctx, v, ifMatch)
			if err != nil {
				return err
			}
			return render(c, got, func(w io.Writer) { vserverTable(w, got) })
		}),
	}
}

func vsListCommand() *cli.Command {
	return &cli.Command{
		Name: "list", Usage: "list the virtual servers", Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			vss, err := api.VServers(ctx)
			if err != nil {
				return err
			}
			if vss == nil {
				vss = []client.VServerView{}
			}
			return render(c, vss, func(w io.Writer) {
				row(w, "NAME", "SERVICE", "HOSTS", "TLS", "LOCATIONS", "VERSION")
				for _, v := range vss {
					row(w, v.Name, v.Service, hostList(v.Hosts), yesNo(v.TLS), len(v.Locations), v.Version)
				}
			})
		}),
	}
}

func hostList(hosts []string) string {
	if len(hosts) == 0 {
		return "(default)"
	}
	return strings.Join(hosts, ",")
}

func vserverTable(w io.Writer, v client.VServerView) {
	row(w, "name", v.Name)
	row(w, "service", v.Service)
	row(w, "hosts", hostList(v.Hosts))
	row(w, "tls", yesNo(v.TLS))
	row(w, "version", v.Version)
	fmt.Fprintln(w)
	if len(v.Locations) == 0 {
		fmt.Fprintln(w, "no locations")
		return
	}
	row(w, "LOCATION", "MATCH", "PATH", "UPSTREAM", "TRIES", "CONNECT TIMEOUT", "READ TIMEOUT", "RETRY NON-IDEMPOTENT")
	for _, l := range v.Locations {
		match := l.Match
		if match == "" {
			match = "prefix"
		}
		row(w, l.Name, match, l.Path, l.Upstream, orDash(l.Tries), orDash(l.ConnectTimeout), orDash(l.ReadTimeout), yesNo(l.RetryNonIdempotent))
	}
}

func vsShowCommand() *cli.Command {
	return &cli.Command{
		Name: "show", Usage: "show a virtual server and its locations", ArgsUsage: "NAME", Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			v, err := api.GetVServer(ctx, c.Args().First())
			if err != nil {
				return err
			}
			return render(c, v, func(w io.Writer) { vserverTable(w, v) })
		}),
	}
}

func vsDelCommand() *cli.Command {
	return &cli.Command{
		Name: "del", Usage: "delete a virtual server and its locations", ArgsUsage: "NAME", Flags: []cli.Flag{ifMatchOf("virtual server")},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			return api.DeleteVServer(ctx, c.Args().First(), c.String("if-match"))
		}),
	}
}

func locationCommand() *cli.Command {
	return &cli.Command{
		Name:   "location",
		Usage:  "locations of a virtual server: which requests go to which upstream",
		Action: groupAction,
		Subcommands: []*cli.Command{
			locationSetCommand(),
			locationDelCommand(),
		},
	}
}

// matchFlag is --match exact|prefix|regex.
func matchFlag() cli.Flag {
	return &cli.StringFlag{Name: "match", Value: "prefix", Usage: "exact, prefix or regex (an exact match wins, then the first regex, then the longest prefix)",
		Action: func(c *cli.Context, v string) error {
			if v != "exact" && v != "prefix" && v != "regex" {
				return usageError(c, "--match %q: want exact, prefix or regex", v)
			}
			return nil
		}}
}

func locationSetCommand() *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "add a location to a virtual server, or replace it",
		ArgsUsage: "VS NAME",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "path", Required: true, Usage: "the path (exact, prefix) or regular expression (regex) requests match"},
			matchFlag(),
			&cli.StringFlag{Name: "upstream", Required: true, Usage: "the upstream the requests go to"},
			&cli.DurationFlag{Name: "connect-timeout", Usage: "connect timeout", DefaultText: "the upstream's"},
			&cli.DurationFlag{Name: "read-timeout", Usage: "time to the response header", DefaultText: "the upstream's"},
			&cli.IntFlag{Name: "tries", Usage: "servers one request may try", DefaultText: "3"},
			&cli.BoolFlag{Name: "retry-non-idempotent", Usage: "also retry POST, PATCH and the like after an upstream error"},
			outputFlag(),
		},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 2, 2); err != nil {
				return err
			}
			l, err := locationFromFlags(c)
			if err != nil {
				return err
			}
			v, err := api.SetLocation(ctx, c.Args().Get(0), l)
			if err != nil {
				return err
			}
			return render(c, v, func(w io.Writer) { vserverTable(w, v) })
		}),
	}
}

// locationFromFlags reads the location of `location set`.
func locationFromFlags(c *cli.Context) (client.Location, error) {
	l := client.Location{Name: c.Args().Get(1), Match: c.String("match"), Path: c.String("path"), Upstream: c.String("upstream"),
		Tries: c.Int("tries"), RetryNonIdempotent: c.Bool("retry-non-idempotent")}
	if l.Tries < 0 {
		return l, usageError(c, "location set: --tries %d: want 1 or more", l.Tries)
	}
	for _, d := range []struct {
		flag string
		dst  *client.Duration
	}{{"connect-timeout", &l.ConnectTimeout}, {"read-timeout", &l.ReadTimeout}} {
		v := c.Duration(d.flag)
		if v < 0 {
			return l, usageError(c, "location set: --%s %v: must not be negative", d.flag, v)
		}
		*d.dst = client.Duration(v)
	}
	return l, nil
}

func locationDelCommand() *cli.Command {
	return &cli.Command{
		Name: "del", Usage: "remove a location from a virtual server", ArgsUsage: "VS NAME", Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 2, 2); err != nil {
				return err
			}
			v, err := api.DeleteLocation(ctx, c.Args().Get(0), c.Args().Get(1))
			if err != nil {
				return err
			}
			return render(c, v, func(w io.Writer) { vserverTable(w, v) })
		}),
	}
}
