package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sluicelb/sluice/l4"
	"github.com/sluicelb/sluice/mgmt/client"
)

func svcCommand() *cli.Command {
	return &cli.Command{
		Name:   "svc",
		Usage:  "L4 services: a VIP spread over backends at the NIC",
		Action: groupAction,
		Subcommands: []*cli.Command{
			svcSetCommand(),
			svcListCommand(),
			svcShowCommand(),
			svcDelCommand(),
			svcBackendCommand(),
		},
	}
}

func svcSetCommand() *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "create or replace a service",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "vip", Required: true, Usage: "virtual IP (IPv4 or IPv6)"},
			&cli.UintFlag{Name: "port", Usage: "port; 0 takes every port of the VIP"},
			&cli.StringFlag{Name: "proto", Value: "tcp", Usage: "tcp or udp"},
			&cli.StringFlag{Name: "mode", Value: string(l4.ModeDSRIPIP), Usage: "dsr-ipip, dsr-l2 or l7 (the L7 proxy answers; no backends)"},
			&cli.StringSliceFlag{Name: "backend", Usage: "ADDR[,weight=N][,state=active|drain|down] (repeatable)"},
			&cli.UintFlag{Name: "table-size", Usage: "Maglev table size, a prime", DefaultText: "65537"},
			&cli.StringFlag{Name: "hash", Usage: "5-tuple (default) or src-ip (client affinity)"},
			ifMatchOf("service"), outputFlag(),
		},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			vip, err := netip.ParseAddr(c.String("vip"))
			if err != nil {
				return usageError(c, "svc set: --vip: %v", err)
			}
			if c.Uint("port") > 65535 {
				return usageError(c, "svc set: --port %d: want 0-65535", c.Uint("port"))
			}
			svc := l4.Service{Name: c.Args().First(), VIP: vip, Port: uint16(c.Uint("port")),
				Proto: l4.Proto(c.String("proto")), Mode: l4.Mode(c.String("mode")),
				TableSize: uint32(c.Uint("table-size")), HashInput: l4.HashInput(c.String("hash"))}
			for _, spec := range c.StringSlice("backend") {
				b, err := parseBackend(spec)
				if err != nil {
					return usageError(c, "svc set: --backend %q: %v", spec, err)
				}
				svc.Backends = append(svc.Backends, b)
			}
			got, err := api.SetService(ctx, svc, c.String("if-match"))
			if err != nil {
				return err
			}
			return render(c, got, func(w io.Writer) { serviceTable(w, got) })
		}),
	}
}

// parseBackend reads ADDR[,weight=N][,state=S].
func parseBackend(spec string) (l4.Backend, error) {
	parts := strings.Split(spec, ",")
	addr, err := netip.ParseAddr(strings.TrimSpace(parts[0]))
	if err != nil {
		return l4.Backend{}, err
	}
	b := l4.Backend{Addr: addr, Weight: l4.DefaultWeight, State: l4.Active}
	for _, kv := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "weight":
			w, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return b, fmt.Errorf("weight %q: want 0-65535", v)
			}
			b.Weight = uint16(w)
		case "state":
			b.State = l4.BackendState(v)
		default:
			return b, fmt.Errorf("unknown option %q: want weight=N or state=active|drain|down", k)
		}
	}
	return b, nil
}

func svcListCommand() *cli.Command {
	return &cli.Command{
		Name: "list", Usage: "list the services", Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			svcs, err := api.Services(ctx)
			if err != nil {
				return err
			}
			return render(c, svcs, func(w io.Writer) {
				row(w, "NAME", "ENDPOINT", "MODE", "BACKENDS", "VERSION")
				for _, s := range svcs {
					active := 0
					for _, b := range s.Backends {
						if b.State == l4.Active && b.Weight > 0 {
							active++
						}
					}
					row(w, s.Name, s.Endpoint(), s.Mode, fmt.Sprintf("%d/%d", active, len(s.Backends)), s.Version)
				}
			})
		}),
	}
}

func serviceTable(w io.Writer, s client.Service) {
	row(w, "name", s.Name)
	row(w, "endpoint", s.Endpoint())
	row(w, "mode", s.Mode)
	if s.Mode == l4.ModeL7 {
		row(w, "version", s.Version)
		return // the proxy's virtual servers say where its requests go
	}
	row(w, "hash", s.HashInput)
	row(w, "table size", s.TableSize)
	row(w, "version", s.Version)
	fmt.Fprintln(w)
	row(w, "BACKEND", "WEIGHT", "STATE")
	for _, b := range s.Backends {
		row(w, b.Addr, b.Weight, b.State)
	}
}

func svcShowCommand() *cli.Command {
	return &cli.Command{
		Name: "show", Usage: "show a service", ArgsUsage: "NAME", Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			s, err := api.GetService(ctx, c.Args().First())
			if err != nil {
				return err
			}
			return render(c, s, func(w io.Writer) { serviceTable(w, s) })
		}),
	}
}

func svcDelCommand() *cli.Command {
	return &cli.Command{
		Name: "del", Usage: "delete a service (its flows end)", ArgsUsage: "NAME", Flags: []cli.Flag{ifMatchOf("service")},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			return api.DeleteService(ctx, c.Args().First(), c.String("if-match"))
		}),
	}
}

func svcBackendCommand() *cli.Command {
	return &cli.Command{
		Name:      "backend",
		Usage:     "change one backend: --weight N, --drain (keep its flows, no new ones), --down (its flows rehash) or --up",
		ArgsUsage: "NAME ADDR",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "weight", Usage: "new weight, 0-65535", DefaultText: "unchanged"},
			&cli.BoolFlag{Name: "drain", Usage: "keep its flows, send it no new ones"},
			&cli.BoolFlag{Name: "down", Usage: "take it out: its flows rehash to the others"},
			&cli.BoolFlag{Name: "up", Usage: "make it active again"},
			ifMatchOf("service"), outputFlag(),
		},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 2, 2); err != nil {
				return err
			}
			var p client.BackendPatch
			states := 0
			for flag, st := range map[string]l4.BackendState{"drain": l4.Drain, "down": l4.Down, "up": l4.Active} {
				if c.Bool(flag) {
					st := st
					p.State = &st
					states++
				}
			}
			if states > 1 {
				return usageError(c, "svc backend: --drain, --down and --up exclude each other")
			}
			if c.IsSet("weight") {
				w := c.Int("weight")
				if w < 0 || w > 65535 {
					return usageError(c, "svc backend: --weight %d: want 0-65535", w)
				}
				uw := uint16(w)
				p.Weight = &uw
			}
			if p.State == nil && p.Weight == nil {
				return usageError(c, "svc backend: give --weight, --drain, --down or --up")
			}
			s, err := api.PatchBackend(ctx, c.Args().Get(0), c.Args().Get(1), p, c.String("if-match"))
			if err != nil {
				return err
			}
			return render(c, s, func(w io.Writer) { serviceTable(w, s) })
		}),
	}
}
