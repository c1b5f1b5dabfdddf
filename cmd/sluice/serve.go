package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/sluicelb/sluice/l4"
	"github.com/sluicelb/sluice/mgmt"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the daemon: attach XDP, restore state, serve the API",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "YAML config file (default " + mgmt.DefaultConfigPath + " if present)"},
			&cli.StringSliceFlag{Name: "iface", Usage: "interface to attach to (repeatable)"},
			&cli.StringFlag{Name: "xdp-mode", Usage: "auto, native or generic"},
			&cli.StringFlag{Name: "bpffs", Usage: "pin directory under the bpffs"},
			&cli.StringFlag{Name: "state-dir", Usage: "directory of the state store"},
			&cli.BoolFlag{Name: "reset-state", Usage: "move a corrupt state store aside and start empty"},
			&cli.StringFlag{Name: "socket", Usage: "unix socket of the API"},
			&cli.StringFlag{Name: "api-listen", Usage: "also serve the API on this TCP address (needs --api-token-file)"},
			&cli.StringFlag{Name: "api-token-file", Usage: "bearer token for the TCP API"},
			&cli.Int64Flag{Name: "max-body", Usage: "largest accepted request body, bytes"},
			&cli.UintFlag{Name: "acl-max-entries", Usage: "capacity of each ACL trie"},
			&cli.StringFlag{Name: "policy", Usage: "deny or allow (applied at start)"},
			&cli.StringSliceFlag{Name: "protect", Usage: "management prefix never dropped (repeatable)"},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error"},
		},
		Action: func(c *cli.Context) error {
			cfg, err := serveConfig(c)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return mgmt.Run(ctx, cfg)
		},
	}
}

// serveConfig starts from the defaults, reads the config file, then applies
// the flags that were set.
func serveConfig(c *cli.Context) (mgmt.Config, error) {
	cfg := mgmt.DefaultConfig()
	path := c.String("config")
	if path == "" {
		if _, err := os.Stat(mgmt.DefaultConfigPath); err == nil {
			path = mgmt.DefaultConfigPath
		}
	}
	if path != "" {
		var err error
		if cfg, err = mgmt.LoadConfig(path); err != nil {
			return cfg, err
		}
	}
	if c.IsSet("iface") {
		cfg.Interfaces = c.StringSlice("iface")
	}
	set := func(name string, dst *string) {
		if c.IsSet(name) {
			*dst = c.String(name)
		}
	}
	set("xdp-mode", &cfg.XDPMode)
	set("bpffs", &cfg.BPFFS)
	set("state-dir", &cfg.StateDir)
	set("socket", &cfg.API.Socket)
	set("api-listen", &cfg.API.Listen)
	set("api-token-file", &cfg.API.TokenFile)
	set("policy", &cfg.Policy)
	set("log-level", &cfg.LogLevel)
	if c.IsSet("protect") {
		cfg.Protect = c.StringSlice("protect")
	}
	if c.IsSet("max-body") {
		cfg.API.MaxBodyBytes = c.Int64("max-body")
	}
	if c.IsSet("acl-max-entries") {
		cfg.ACLMaxEntries = uint32(c.Uint("acl-max-entries"))
	}
	cfg.ResetState = c.Bool("reset-state")
	return cfg, cfg.Validate()
}

func detachCommand() *cli.Command {
	return &cli.Command{
		Name:  "detach",
		Usage: "remove the XDP program from interfaces (works without a daemon)",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "iface", Usage: "interface to detach from (repeatable)"},
			&cli.BoolFlag{Name: "all", Usage: "detach from every interface and remove all pins"},
			&cli.StringFlag{Name: "bpffs", Value: mgmt.DefaultConfig().BPFFS, Usage: "pin directory under the bpffs"},
		},
		Action: func(c *cli.Context) error {
			ifaces, all := c.StringSlice("iface"), c.Bool("all")
			if len(ifaces) == 0 && !all {
				return cli.Exit("detach: name --iface IF or --all", 2)
			}
			return l4.Detach(c.String("bpffs"), ifaces, all)
		},
	}
}
