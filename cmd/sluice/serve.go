package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/sluicelb/sluice/mgmt"
)

// runDaemon and defaultConfigPath are variables so that tests can check the
// configuration serve builds without running the daemon.
var (
	runDaemon         = mgmt.Run
	defaultConfigPath = mgmt.DefaultConfigPath
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the daemon: attach XDP, restore the desired state, serve the API",
		Description: "Flags override the config file (--config, else " + mgmt.DefaultConfigPath + " if present).\n" +
			"SIGINT and SIGTERM stop the daemon but leave the programs attached and the maps pinned:\n" +
			"filtering goes on. `sluice detach` removes them.\n" +
			"SIGUSR2 upgrades in place: the binary at the daemon's path starts with the same arguments,\n" +
			"takes over the L7 listeners, the maps and the state, and the old process drains and exits.\n" +
			"SIGUSR1 reopens the access log.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "YAML config file (default " + mgmt.DefaultConfigPath + " if present)"},
			&cli.StringSliceFlag{Name: "iface", Usage: "interface to attach to (repeatable)"},
			&cli.StringFlag{Name: "xdp-mode", Usage: "auto, native or generic"},
			&cli.StringFlag{Name: "bpffs", Usage: "pin directory under the bpffs"},
			&cli.StringFlag{Name: "state-dir", Usage: "directory of the desired-state store"},
			&cli.BoolFlag{Name: "reset-state", Usage: "move a corrupt state store aside and start empty"},
			&cli.StringFlag{Name: "socket", Usage: "unix socket of the API"},
			&cli.StringFlag{Name: "api-listen", Usage: "also serve the API on this TCP host:port (needs --api-token-file)"},
			&cli.StringFlag{Name: "api-token-file", Usage: "file holding the bearer token of the TCP API"},
			&cli.Int64Flag{Name: "max-body", Usage: "largest accepted request body, in bytes"},
			&cli.UintFlag{Name: "acl-max-entries", Usage: "capacity of each ACL trie (IPv4, IPv6)"},
			&cli.StringFlag{Name: "policy", Usage: "ACL mode applied at start: deny or allow"},
			&cli.StringSliceFlag{Name: "protect", Usage: "management prefix never dropped, replaces the stored ones (repeatable)"},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error"},
			&cli.UintFlag{Name: "flow-table-size", Usage: "flows the L4 connection table holds: the IPv4 one, and the IPv6 one unless --flow-table-size6 is set"},
			&cli.UintFlag{Name: "flow-table-size6", Usage: "flows the IPv6 connection table holds (default: --flow-table-size)"},
			&cli.UintFlag{Name: "flow-cache-slots", Usage: "slots of each CPU's TCP flow cache, a power of two (56 bytes each, on every CPU)"},
			&cli.StringFlag{Name: "encap-src4", Usage: "outer source prefix of IPIP (default: the VIP)"},
			&cli.StringFlag{Name: "encap-src6", Usage: "outer source prefix of IP6IP6 (default: the VIP)"},
			&cli.StringFlag{Name: "next-hop-mac", Usage: "MAC every dsr-ipip frame goes to, the router's (default: the neighbour table's, per backend)"},
			&cli.IntFlag{Name: "udp-timeout", Usage: "seconds an idle UDP flow keeps its backend"},
			&cli.BoolFlag{Name: "no-l7", Usage: "run without the L7 proxy and its intercept"},
			&cli.IntFlag{Name: "l7-header-timeout", Usage: "seconds a client may take to send its request headers (slowloris)"},
			&cli.IntFlag{Name: "l7-idle-timeout", Usage: "seconds an idle keep-alive connection stays open"},
		},
		Action: func(c *cli.Context) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			cfg, err := serveConfig(c)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDaemon(ctx, cfg)
		},
	}
}

// serveConfig starts from mgmt.DefaultConfig, reads the config file (--config,
// else the default path when it exists), then applies the flags that were set.
// It returns the error of a file that cannot be loaded or of an invalid result.
func serveConfig(c *cli.Context) (mgmt.Config, error) {
	cfg := mgmt.DefaultConfig()
	path := c.String("config")
	if path == "" {
		if _, err := os.Stat(defaultConfigPath); err == nil {
			path = defaultConfigPath
		}
	}
	if path != "" {
		var err error
		if cfg, err = mgmt.LoadConfig(path); err != nil {
			return cfg, err
		}
	}
	str := func(name string, dst *string) {
		if c.IsSet(name) {
			*dst = c.String(name)
		}
	}
	str("xdp-mode", &cfg.XDPMode)
	str("bpffs", &cfg.BPFFS)
	str("state-dir", &cfg.StateDir)
	str("socket", &cfg.API.Socket)
	str("api-listen", &cfg.API.Listen)
	str("api-token-file", &cfg.API.TokenFile)
	str("policy", &cfg.Policy)
	str("log-level", &cfg.LogLevel)
	str("encap-src4", &cfg.L4.EncapSource4)
	str("encap-src6", &cfg.L4.EncapSource6)
	str("next-hop-mac", &cfg.L4.NextHopMAC)
	if c.IsSet("flow-table-size") {
		cfg.L4.FlowTableSize = uint32(c.Uint("flow-table-size"))
	}
	if c.IsSet("flow-table-size6") {
		cfg.L4.FlowTableSize6 = uint32(c.Uint("flow-table-size6"))
	}
	if c.IsSet("flow-cache-slots") {
		cfg.L4.FlowCacheSlots = uint32(c.Uint("flow-cache-slots"))
	}
	if c.IsSet("udp-timeout") {
		cfg.L4.UDPTimeoutSeconds = c.Int("udp-timeout")
	}
	if c.IsSet("no-l7") {
		cfg.L7.Disabled = c.Bool("no-l7")
	}
	if c.IsSet("l7-header-timeout") {
		cfg.L7.ReadHeaderTimeoutSeconds = c.Int("l7-header-timeout")
	}
	if c.IsSet("l7-idle-timeout") {
		cfg.L7.IdleTimeoutSeconds = c.Int("l7-idle-timeout")
	}
	if c.IsSet("iface") {
		cfg.Interfaces = c.StringSlice("iface")
	}
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
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("serve: %w", err)
	}
	return cfg, nil
}
