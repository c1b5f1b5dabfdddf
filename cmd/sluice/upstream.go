package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sluicelb/sluice/l7/upstream"
	"github.com/sluicelb/sluice/mgmt/client"
)

func upstreamCommand() *cli.Command {
	return &cli.Command{
		Name:   "upstream",
		Usage:  "L7 upstreams: pools of servers that locations send requests to",
		Action: groupAction,
		Subcommands: []*cli.Command{
			upstreamSetCommand(),
			upstreamListCommand(),
			upstreamShowCommand(),
			upstreamDelCommand(),
			upstreamServerCommand(),
			upstreamResetStatsCommand(),
		},
	}
}

// balancers are the values of --balancer.
var balancers = []string{upstream.BalancerRoundRobin, upstream.BalancerLeastConn, upstream.BalancerHash, upstream.BalancerRandom}

func upstreamSetCommand() *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "create or replace an upstream, its servers included",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "balancer", Usage: "round_robin (default, weighted), least_conn, hash or random (two random choices)"},
			&cli.StringFlag{Name: "hash-key", Usage: "with --balancer hash: client_ip (default), uri, header:NAME or cookie:NAME"},
			&cli.StringSliceFlag{Name: "server", Usage: "ADDR[,weight=N][,max_fails=N][,fail_timeout=D][,backup][,down][,id=N] (repeatable)"},
			&cli.IntFlag{Name: "keepalive", Usage: "idle connections kept per server", DefaultText: fmt.Sprint(upstream.DefaultKeepAlive)},
			&cli.DurationFlag{Name: "connect-timeout", Usage: "connect timeout", DefaultText: upstream.DefaultConnectTimeout.String()},
			&cli.DurationFlag{Name: "read-timeout", Usage: "time to the response header", DefaultText: upstream.DefaultReadTimeout.String()},
			&cli.DurationFlag{Name: "write-timeout", Usage: "time to send the request", DefaultText: upstream.DefaultWriteTimeout.String()},
			&cli.StringFlag{Name: "tls", Usage: "speak tls or tlcp to the servers"},
			&cli.StringFlag{Name: "tls-server-name", Usage: "the server name to send and verify (default: the address)"},
			&cli.StringFlag{Name: "tls-ca", Usage: "PEM `FILE` of the CAs to verify the servers with (default: the system's)"},
			&cli.BoolFlag{Name: "tls-skip-verify", Usage: "do not verify the servers' certificates"},
			&cli.StringFlag{Name: "tls-cert", Usage: "PEM `FILE` of the client certificate (tlcp: the signing one)"},
			&cli.StringFlag{Name: "tls-key", Usage: "PEM `FILE` of its key"},
			&cli.StringFlag{Name: "tls-enc-cert", Usage: "tlcp: PEM `FILE` of the client encryption certificate"},
			&cli.StringFlag{Name: "tls-enc-key", Usage: "tlcp: PEM `FILE` of its key"},
			ifMatchOf("upstream"), outputFlag(),
		},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			u, err := upstreamFromFlags(c)
			if err != nil {
				return err
			}
			got, err := api.SetUpstream(ctx, u, c.String("if-match"))
			if err != nil {
				return err
			}
			return render(c, got, func(w io.Writer) { upstreamTable(w, got) })
		}),
	}
}

// upstreamFromFlags reads the upstream of `upstream set`; bad flags are
// usage errors, unreadable files errors.
func upstreamFromFlags(c *cli.Context) (client.Upstream, error) {
	u := client.Upstream{Name: c.Args().First(), Balancer: c.String("balancer"), HashKey: c.String("hash-key"),
		KeepAlive: c.Int("keepalive"), Servers: []client.Server{}}
	if u.Balancer != "" && !slices.Contains(balancers, u.Balancer) {
		return u, usageError(c, "upstream set: --balancer %q: want %s", u.Balancer, strings.Join(balancers, ", "))
	}
	if u.HashKey != "" {
		if u.Balancer != upstream.BalancerHash {
			return u, usageError(c, "upstream set: --hash-key needs --balancer hash")
		}
		if err := checkHashKey(u.HashKey); err != nil {
			return u, usageError(c, "upstream set: --hash-key %q: %v", u.HashKey, err)
		}
	}
	if u.KeepAlive < 0 {
		return u, usageError(c, "upstream set: --keepalive %d: must not be negative", u.KeepAlive)
	}
	for _, d := range []struct {
		flag string
		dst  *client.Duration
	}{{"connect-timeout", &u.ConnectTimeout}, {"read-timeout", &u.ReadTimeout}, {"write-timeout", &u.WriteTimeout}} {
		v := c.Duration(d.flag)
		if v < 0 {
			return u, usageError(c, "upstream set: --%s %v: must not be negative", d.flag, v)
		}
		*d.dst = client.Duration(v)
	}
	for _, spec := range c.StringSlice("server") {
		s, err := parseServer(spec)
		if err != nil {
			return u, usageError(c, "upstream set: --server %q: %v", spec, err)
		}
		u.Servers = append(u.Servers, s)
	}
	tls, err := upstreamTLS(c)
	if err != nil {
		return u, err
	}
	u.TLS = tls
	return u, nil
}

// checkHashKey accepts client_ip, uri, header:NAME and cookie:NAME.
func checkHashKey(k string) error {
	if k == upstream.HashClientIP || k == upstream.HashURI {
		return nil
	}
	for _, prefix := range []string{upstream.HashHeaderPrefix, upstream.HashCookiePrefix} {
		if name, ok := strings.CutPrefix(k, prefix); ok && name != "" {
			return nil
		}
	}
	return errors.New("want client_ip, uri, header:NAME or cookie:NAME")
}

// upstreamTLS reads --tls and the --tls-* flags: nil without --tls.
func upstreamTLS(c *cli.Context) (*client.UpstreamTLS, error) {
	mode := c.String("tls")
	tlsFlags := []string{"tls-server-name", "tls-ca", "tls-skip-verify", "tls-cert", "tls-key", "tls-enc-cert", "tls-enc-key"}
	if mode == "" {
		for _, f := range tlsFlags {
			if c.IsSet(f) {
				return nil, usageError(c, "upstream set: --%s needs --tls tls or --tls tlcp", f)
			}
		}
		return nil, nil
	}
	if mode != "tls" && mode != "tlcp" {
		return nil, usageError(c, "upstream set: --tls %q: want tls or tlcp", mode)
	}
	if c.IsSet("tls-cert") != c.IsSet("tls-key") {
		return nil, usageError(c, "upstream set: --tls-cert and --tls-key go together")
	}
	if c.IsSet("tls-enc-cert") != c.IsSet("tls-enc-key") {
		return nil, usageError(c, "upstream set: --tls-enc-cert and --tls-enc-key go together")
	}
	if mode == "tls" && c.IsSet("tls-enc-cert") {
		return nil, usageError(c, "upstream set: --tls-enc-cert and --tls-enc-key are for --tls tlcp")
	}
	t := &client.UpstreamTLS{Mode: mode, ServerName: c.String("tls-server-name"), SkipVerify: c.Bool("tls-skip-verify")}
	for _, f := range []struct {
		flag string
		dst  *string
	}{{"tls-ca", &t.CA}, {"tls-cert", &t.Cert}, {"tls-key", &t.Key}, {"tls-enc-cert", &t.EncCert}, {"tls-enc-key", &t.EncKey}} {
		pem, err := readPEMFlag(c, f.flag)
		if err != nil {
			return nil, err
		}
		*f.dst = pem
	}
	return t, nil
}

// readPEMFlag reads the file that flag names; "" when the flag is not set.
func readPEMFlag(c *cli.Context, flag string) (string, error) {
	path := c.String(flag)
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read --%s: %w", flag, err)
	}
	return string(b), nil
}

const serverOptions = "weight=N, max_fails=N, fail_timeout=D, backup, down or id=N"

// parseServer reads ADDR[,weight=N][,max_fails=N][,fail_timeout=D][,backup][,down][,id=N],
// ADDR being HOST:PORT.
func parseServer(spec string) (client.Server, error) {
	parts := strings.Split(spec, ",")
	s := client.Server{Addr: strings.TrimSpace(parts[0])}
	if err := checkHostPort(s.Addr); err != nil {
		return s, err
	}
	for _, opt := range parts[1:] {
		k, v, hasValue := strings.Cut(strings.TrimSpace(opt), "=")
		var err error
		switch k {
		case "weight":
			s.Weight, err = nonNegative(k, v)
		case "max_fails":
			s.MaxFails, err = maxFails(v)
		case "fail_timeout":
			var d time.Duration
			d, err = time.ParseDuration(v)
			if err != nil || d < 0 {
				err = fmt.Errorf("fail_timeout %q: want a duration like 10s", v)
			}
			s.FailTimeout = client.Duration(d)
		case "id":
			s.ID, err = strconv.Atoi(v)
			if err != nil || s.ID <= 0 {
				err = fmt.Errorf("id %q: want a positive integer", v)
			}
		case "backup", "down":
			if hasValue {
				return s, fmt.Errorf("%s takes no value", k)
			}
			if k == "backup" {
				s.Backup = true
			} else {
				s.Down = true
			}
		default:
			return s, fmt.Errorf("unknown option %q: want %s", k, serverOptions)
		}
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

// maxFails reads a max_fails count: -1 turns passive health off, 0 is the
// default (1).
func maxFails(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < -1 {
		return 0, fmt.Errorf("max_fails %q: want -1 (off) or a count", v)
	}
	return n, nil
}

func nonNegative(name, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q: want 0 or more", name, v)
	}
	return n, nil
}

// checkHostPort accepts HOST:PORT, [IPv6]:PORT included.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("address %q: want HOST:PORT", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("address %q: port %q: want 1-65535", addr, port)
	}
	return nil
}

func upstreamListCommand() *cli.Command {
	return &cli.Command{
		Name: "list", Usage: "list the upstreams", Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			ups, err := api.Upstreams(ctx)
			if err != nil {
				return err
			}
			if ups == nil {
				ups = []client.UpstreamView{}
			}
			return render(c, ups, func(w io.Writer) {
				row(w, "NAME", "BALANCER", "SERVERS", "TLS", "VERSION")
				for _, u := range ups {
					avail := 0
					for _, s := range u.Servers {
						if s.Available {
							avail++
						}
					}
					row(w, u.Name, balancerOf(u.Upstream), fmt.Sprintf("%d/%d", avail, len(u.Servers)), tlsMode(u.TLS), u.Version)
				}
			})
		}),
	}
}

// orDefault is v, or def when v is zero: what the daemon uses.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func balancerOf(u client.Upstream) string {
	b := orDefault(u.Balancer, upstream.BalancerRoundRobin)
	if b == upstream.BalancerHash {
		b += " " + orDefault(u.HashKey, upstream.HashClientIP)
	}
	return b
}

func maxFailsText(n int) any {
	if n == upstream.MaxFailsDisabled {
		return "off"
	}
	return orDefault(n, upstream.DefaultMaxFails)
}

func tlsMode(t *client.UpstreamTLS) string {
	switch {
	case t == nil:
		return "-"
	case t.Mode == "":
		return "tls"
	}
	return t.Mode
}

func upstreamTable(w io.Writer, u client.UpstreamView) {
	row(w, "name", u.Name)
	row(w, "balancer", balancerOf(u.Upstream))
	row(w, "keepalive", orDefault(u.KeepAlive, upstream.DefaultKeepAlive))
	row(w, "connect timeout", orDefault(u.ConnectTimeout, client.Duration(upstream.DefaultConnectTimeout)))
	row(w, "read timeout", orDefault(u.ReadTimeout, client.Duration(upstream.DefaultReadTimeout)))
	row(w, "write timeout", orDefault(u.WriteTimeout, client.Duration(upstream.DefaultWriteTimeout)))
	if t := u.TLS; t != nil {
		var opts []string
		if t.ServerName != "" {
			opts = append(opts, "server name "+t.ServerName)
		}
		if t.CA != "" {
			opts = append(opts, "own CA")
		}
		if t.SkipVerify {
			opts = append(opts, "no verification")
		}
		if t.Cert != "" || t.EncCert != "" {
			opts = append(opts, "client certificate")
		}
		row(w, "tls", strings.Join(append([]string{tlsMode(t)}, opts...), ", "))
	} else {
		row(w, "tls", "-")
	}
	row(w, "version", u.Version)
	fmt.Fprintln(w)
	serversTable(w, u.Servers)
}

// serverState is up, down (set so) or failed (passive health checks took
// it out).
func serverState(s client.ServerView) string {
	switch {
	case s.Down:
		return "down"
	case !s.Available:
		return "failed"
	}
	return "up"
}

func serversTable(w io.Writer, servers []client.ServerView) {
	if len(servers) == 0 {
		fmt.Fprintln(w, "no servers")
		return
	}
	row(w, "ID", "ADDR", "WEIGHT", "MAX FAILS", "FAIL TIMEOUT", "ROLE", "STATE", "ACTIVE")
	for _, s := range servers {
		role := "primary"
		if s.Backup {
			role = "backup"
		}
		row(w, s.ID, s.Addr, orDefault(s.Weight, upstream.DefaultWeight), maxFailsText(s.MaxFails),
			orDefault(s.FailTimeout, client.Duration(upstream.DefaultFailTimeout)), role, serverState(s), s.Active)
	}
}

func upstreamShowCommand() *cli.Command {
	return &cli.Command{
		Name: "show", Usage: "show an upstream and its servers' state", ArgsUsage: "NAME", Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			u, err := api.GetUpstream(ctx, c.Args().First())
			if err != nil {
				return err
			}
			return render(c, u, func(w io.Writer) { upstreamTable(w, u) })
		}),
	}
}

func upstreamDelCommand() *cli.Command {
	return &cli.Command{
		Name: "del", Usage: "delete an upstream no location sends to", ArgsUsage: "NAME", Flags: []cli.Flag{ifMatchOf("upstream")},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			return api.DeleteUpstream(ctx, c.Args().First(), c.String("if-match"))
		}),
	}
}

func upstreamResetStatsCommand() *cli.Command {
	return &cli.Command{
		Name: "reset-stats", Usage: "zero the counters of an upstream's servers", ArgsUsage: "NAME",
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			return api.ResetUpstreamStats(ctx, c.Args().First())
		}),
	}
}

func upstreamServerCommand() *cli.Command {
	return &cli.Command{
		Name:   "server",
		Usage:  "add, change and remove one server of an upstream, without touching the others",
		Action: groupAction,
		Subcommands: []*cli.Command{
			upstreamServerAddCommand(),
			upstreamServerSetCommand(),
			upstreamServerDelCommand(),
			upstreamServerListCommand(),
			upstreamServerShowCommand(),
		},
	}
}

// serverID reads the ID argument of the server subcommands.
func serverID(c *cli.Context, arg string) (int, error) {
	id, err := strconv.Atoi(arg)
	if err != nil || id <= 0 {
		return 0, usageError(c, "%s: server id %q: want a positive integer", commandName(c), arg)
	}
	return id, nil
}

func serverTable(w io.Writer, s client.ServerView) {
	serversTable(w, []client.ServerView{s})
}

func upstreamServerAddCommand() *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "add a server to an upstream; prints it with its id",
		ArgsUsage: "NAME ADDR",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "weight", Usage: "weight", DefaultText: fmt.Sprint(upstream.DefaultWeight)},
			&cli.IntFlag{Name: "max-fails", Usage: "failures within --fail-timeout that take it out for --fail-timeout; -1: never", DefaultText: fmt.Sprint(upstream.DefaultMaxFails)},
			&cli.DurationFlag{Name: "fail-timeout", Usage: "the window of --max-fails and how long it stays out", DefaultText: upstream.DefaultFailTimeout.String()},
			&cli.BoolFlag{Name: "backup", Usage: "take requests only when no primary server is available"},
			&cli.BoolFlag{Name: "down", Usage: "add it marked down"},
			&cli.IntFlag{Name: "id", Usage: "its id", DefaultText: "the next free one"},
			outputFlag(),
		},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 2, 2); err != nil {
				return err
			}
			s := client.Server{ID: c.Int("id"), Addr: c.Args().Get(1), Weight: c.Int("weight"), MaxFails: c.Int("max-fails"),
				FailTimeout: client.Duration(c.Duration("fail-timeout")), Backup: c.Bool("backup"), Down: c.Bool("down")}
			if err := checkHostPort(s.Addr); err != nil {
				return usageError(c, "upstream server add: %v", err)
			}
			for _, f := range []string{"weight", "id"} {
				if c.Int(f) < 0 {
					return usageError(c, "upstream server add: --%s %d: must not be negative", f, c.Int(f))
				}
			}
			if s.MaxFails < -1 {
				return usageError(c, "upstream server add: --max-fails %d: want -1 (off) or a count", s.MaxFails)
			}
			if s.FailTimeout < 0 {
				return usageError(c, "upstream server add: --fail-timeout %v: must not be negative", s.FailTimeout)
			}
			got, err := api.AddServer(ctx, c.Args().Get(0), s)
			if err != nil {
				return err
			}
			return render(c, got, func(w io.Writer) { serverTable(w, got) })
		}),
	}
}

func upstreamServerSetCommand() *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "change one server: --addr, --weight, --max-fails, --fail-timeout, --down or --up, --backup or --no-backup",
		ArgsUsage: "NAME ID",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Usage: "new address, HOST:PORT"},
			&cli.IntFlag{Name: "weight", Usage: "new weight", DefaultText: "unchanged"},
			&cli.IntFlag{Name: "max-fails", Usage: "new max fails; -1: never take it out", DefaultText: "unchanged"},
			&cli.DurationFlag{Name: "fail-timeout", Usage: "new fail timeout", DefaultText: "unchanged"},
			&cli.BoolFlag{Name: "down", Usage: "take no requests"}, &cli.BoolFlag{Name: "up", Usage: "take requests again"},
			&cli.BoolFlag{Name: "backup", Usage: "become a backup server"}, &cli.BoolFlag{Name: "no-backup", Usage: "become a primary server"},
			outputFlag(),
		},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 2, 2); err != nil {
				return err
			}
			id, err := serverID(c, c.Args().Get(1))
			if err != nil {
				return err
			}
			p, err := serverPatchFromFlags(c)
			if err != nil {
				return err
			}
			got, err := api.PatchServer(ctx, c.Args().Get(0), id, p)
			if err != nil {
				return err
			}
			return render(c, got, func(w io.Writer) { serverTable(w, got) })
		}),
	}
}

// serverPatchFromFlags reads the flags of `upstream server set` that are set.
func serverPatchFromFlags(c *cli.Context) (client.ServerPatch, error) {
	var p client.ServerPatch
	if c.IsSet("addr") {
		a := c.String("addr")
		if err := checkHostPort(a); err != nil {
			return p, usageError(c, "upstream server set: --addr: %v", err)
		}
		p.Addr = &a
	}
	if c.IsSet("weight") {
		n := c.Int("weight")
		if n < 1 {
			return p, usageError(c, "upstream server set: --weight %d: want 1 or more", n)
		}
		p.Weight = &n
	}
	if c.IsSet("max-fails") {
		n := c.Int("max-fails")
		if n < -1 {
			return p, usageError(c, "upstream server set: --max-fails %d: want -1 (off) or a count", n)
		}
		p.MaxFails = &n
	}
	if c.IsSet("fail-timeout") {
		d := client.Duration(c.Duration("fail-timeout"))
		if d < 0 {
			return p, usageError(c, "upstream server set: --fail-timeout %v: must not be negative", d)
		}
		p.FailTimeout = &d
	}
	for _, pair := range [][2]string{{"down", "up"}, {"backup", "no-backup"}} {
		on, off := c.Bool(pair[0]), c.Bool(pair[1])
		if on && off {
			return p, usageError(c, "upstream server set: --%s and --%s exclude each other", pair[0], pair[1])
		}
		if on || off {
			v := on
			if pair[0] == "down" {
				p.Down = &v
			} else {
				p.Backup = &v
			}
		}
	}
	if p == (client.ServerPatch{}) {
		return p, usageError(c, "upstream server set: give --addr, --weight, --max-fails, --fail-timeout, --down, --up, --backup or --no-backup")
	}
	return p, nil
}

func upstreamServerDelCommand() *cli.Command {
	return &cli.Command{
		Name: "del", Usage: "remove one server from an upstream", ArgsUsage: "NAME ID",
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 2, 2); err != nil {
				return err
			}
			id, err := serverID(c, c.Args().Get(1))
			if err != nil {
				return err
			}
			return api.DeleteServer(ctx, c.Args().Get(0), id)
		}),
	}
}

func upstreamServerListCommand() *cli.Command {
	return &cli.Command{
		Name: "list", Usage: "list the servers of an upstream with their state", ArgsUsage: "NAME", Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			ss, err := api.Servers(ctx, c.Args().First())
			if err != nil {
				return err
			}
			if ss == nil {
				ss = []client.ServerView{}
			}
			return render(c, ss, func(w io.Writer) { serversTable(w, ss) })
		}),
	}
}

func upstreamServerShowCommand() *cli.Command {
	return &cli.Command{
		Name: "show", Usage: "show one server of an upstream", ArgsUsage: "NAME ID", Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 2, 2); err != nil {
				return err
			}
			id, err := serverID(c, c.Args().Get(1))
			if err != nil {
				return err
			}
			s, err := api.GetServer(ctx, c.Args().First(), id)
			if err != nil {
				return err
			}
			return render(c, s, func(w io.Writer) { serverTable(w, s) })
		}),
	}
}
