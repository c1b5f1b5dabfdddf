package mgmt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluicelb/sluice/l4"
	"github.com/sluicelb/sluice/l7"
	"github.com/sluicelb/sluice/l7/intercept"
	"github.com/sluicelb/sluice/maps"
)

// Run is `sluice serve`: it restores the desired state, reconciles the pinned
// maps to it, attaches the program and serves the API until ctx is done. On
// return the programs stay attached and the maps pinned, so filtering goes on
// without the daemon; `sluice detach` removes them.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	// Caught from the start: their default action ends the process. An
	// upgrade asked for during the start runs once the API serves.
	upgrade, usr1 := make(chan os.Signal, 1), make(chan os.Signal, 1)
	signal.Notify(upgrade, syscall.SIGUSR2)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(upgrade)
	defer signal.Stop(usr1)
	base := newLogger(cfg.LogLevel)
	log := base.With("component", "daemon")
	mode, _ := l4.ParseXDPMode(cfg.XDPMode)
	mounted, err := maps.EnsureBPFFS(cfg.BPFFS)
	if err != nil {
		return err
	}
	if mounted {
		log.Warn("mounted the bpffs at /sys/fs/bpf because none was there; if this daemon runs in a private mount namespace (ip netns exec), its pins die with it and filtering stops when it exits: run it in the host's mount namespace (nsenter --net=…)")
	}
	store, st, err := openState(cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()

	dp, err := maps.OpenDatapath(maps.DatapathOptions{PinDir: cfg.BPFFS, ACLMaxEntries: cfg.ACLMaxEntries,
		FlowTableSize: cfg.L4.FlowTableSize, FlowTableSize6: cfg.L4.FlowTableSize6, FlowCacheSlots: cfg.L4.FlowCacheSlots})
	if err != nil {
		return err
	}
	defer dp.Close()
	acl, err := dp.ACL()
	if err != nil {
		return err
	}
	state := newACLState(store, acl, dp.Policy(), base.With("component", "acl"))
	if err := state.restore(st); err != nil {
		return err
	}
	if err := applyConfigState(state, cfg); err != nil {
		return err
	}

	// Interfaces attached by an earlier run stay attached and get the new program too.
	ifaces := append([]string(nil), cfg.Interfaces...)
	if prev, err := l4.Attached(cfg.BPFFS); err == nil {
		for _, a := range prev {
			if !contains(ifaces, a.Iface) {
				ifaces = append(ifaces, a.Iface)
			}
		}
	}
	if err := l4.CheckIfindexSlots(ifaces); err != nil {
		return err
	}
	var atts []l4.Attachment
	for _, iface := range ifaces {
		a, err := l4.Attach(dp.Program(), cfg.BPFFS, iface, mode, base.With("component", "attach"))
		if err != nil {
			return err
		}
		log.Info("xdp attached", "iface", a.Iface, "mode", a.Mode, "program_id", a.ProgramID, "link_id", a.LinkID)
		atts = append(atts, a)
	}
	if err := dp.PinFresh(cfg.BPFFS); err != nil {
		return err
	}
	if err := state.reconcile(); err != nil {
		return err
	}

	lb := dp.LB()
	if err := configureLB(lb, cfg.L4, atts); err != nil {
		return err
	}
	rec, err := l4.NewReconciler(lb, l4.NetlinkResolver)
	if err != nil {
		return err
	}
	if mac, _ := cfg.L4.nextHopMAC(); mac != nil {
		rec.ResolveTunnel = l4.StaticMACResolver(mac)
	}
	svcLog := base.With("component", "l4")
	rec.OnUnresolved = func(svc string, backend netip.Addr, err error) {
		svcLog.Warn("backend has no next hop; it keeps the one it had, or takes no new flows until it has one", "service", svc, "backend", backend, "err", err)
	}
	svcs := newSvcState(store, rec, lb, svcLog)
	if err := svcs.restore(st); err != nil {
		return err
	}
	go refreshNextHops(ctx, rec, svcLog)

	handoff, err := inheritedFromPredecessor()
	if err != nil {
		return err
	}
	var l7st *l7State
	var l7rt *l7Runtime
	if !cfg.L7.Disabled {
		l7log := base.With("component", "l7")
		var inherit []*net.TCPListener
		if handoff != nil {
			inherit = handoff.listeners
		}
		l7rt, err = startL7(ctx, cfg.L7, l7log, inherit, usr1, func(p *l7.Proxy, icpt *intercept.Interceptor) error {
			l7st = newL7State(store, p, icpt, l7log)
			svcs.onL7 = l7st.setEndpoints
			return l7st.restore(st.L7, svcs.L7Endpoints())
		})
		if err != nil {
			return err
		}
		defer l7rt.stop()
	} else {
		if handoff != nil {
			for _, ln := range handoff.listeners {
				ln.Close() // the predecessor keeps serving them until it hands off
			}
		}
		removeL7Routes(handoff != nil, log)
	}

	start := time.Now()
	stats := func() (Stats, error) {
		out, err := collectStats(dp.Stats(), atts, state)
		if err != nil {
			return out, err
		}
		out.L4, err = svcs.stats()
		return out, err
	}
	srv := NewServer(state, svcs, func() Status {
		return Status{Version: Version, PID: os.Getpid(), UptimeSeconds: uptime(start)(), BPFFS: cfg.BPFFS, Interfaces: atts}
	}, stats, cfg.API.MaxBodyBytes)
	if l7st != nil {
		srv.SetL7(l7st, l7rt.proxy)
	}
	apiLog := base.With("component", "api")
	onServing := func() {
		if err := notifyServing(); err != nil {
			log.Warn("tell the service manager this daemon serves", "err", err)
		}
		if handoff == nil {
			return
		}
		if err := handoff.signalReady(); err != nil {
			log.Error("tell the daemon before that this one serves", "err", err)
		}
		l7rt.ownEverything()
		handoff = nil
	}
	for {
		upgraded, err := serveAPI(ctx, cfg.API, srv, apiLog, upgrade, onServing)
		if err != nil || !upgraded {
			return err
		}
		// The API is stopped, so nothing writes the store: the successor
		// opens it.
		if err := store.Close(); err != nil {
			log.Warn("close the store for the successor", "err", err)
		}
		err = upgradeInPlace(ctx, l7rt, log)
		if err == nil {
			return nil
		}
		log.Error("upgrade failed; this daemon serves on", "err", err)
		if err := store.Reopen(); err != nil {
			return fmt.Errorf("reopen the store after a failed upgrade: %w", err)
		}
		if err := reclaimDatapath(dp, cfg.BPFFS, atts, mode, base.With("component", "attach")); err != nil {
			return fmt.Errorf("take the datapath back after a failed upgrade: %w", err)
		}
	}
}

// reclaimDatapath puts this daemon's program back in its links and its maps
// back in their pins: a successor that failed may have swapped in its own,
// and maps it made anew (a new layout, another size) would otherwise be
// the ones the packets see while this daemon writes to its own.
func reclaimDatapath(dp *maps.Datapath, pinDir string, atts []l4.Attachment, mode l4.XDPMode, log *slog.Logger) error {
	for i, a := range atts {
		back, err := l4.Attach(dp.Program(), pinDir, a.Iface, mode, log)
		if err != nil {
			return err
		}
		atts[i] = back
	}
	pinned, err := dp.Reclaim(pinDir)
	if len(pinned) > 0 {
		log.Warn("the failed successor had replaced maps; this daemon's are pinned again", "maps", pinned)
	}
	if err != nil {
		return err
	}
	// Its caches may name flows only its own tables held.
	return dp.LB().InvalidateFlowCache()
}

// removeL7Routes removes the local routes an earlier daemon's intercept left
// (it was killed, or hands off to this one, which runs without the proxy):
// at once, or, after a handoff, once the predecessor (this daemon's
// parent) has drained and exited, bounded.
func removeL7Routes(afterHandoff bool, log *slog.Logger) {
	remove := func() {
		removed, err := intercept.RemoveStaleRoutes(intercept.Options{})
		for _, a := range removed {
			log.Info("removed a local route of an earlier daemon's L7 intercept; this one runs without the proxy", "addr", a)
		}
		if err != nil {
			log.Warn("remove the local routes of an earlier daemon's L7 intercept", "err", err)
		}
	}
	if !afterHandoff {
		remove()
		return
	}
	parent := os.Getppid()
	go func() {
		for deadline := time.Now().Add(handoffDrain + 15*time.Second); os.Getppid() == parent && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
		remove()
	}()
}

// upgradeInPlace starts the successor and, once it serves, hands it the L7
// intercept and drains this daemon's requests in flight.
func upgradeInPlace(ctx context.Context, l7rt *l7Runtime, log *slog.Logger) error {
	var files []*os.File
	if l7rt != nil {
		var err error
		if files, err = l7rt.icpt.ListenerFiles(); err != nil {
			return err
		}
	}
	log.Info("upgrade: starting the successor")
	pid, err := startSuccessor(ctx, files)
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		return err
	}
	log.Info("upgrade: the successor serves; handing off and draining", "pid", pid)
	if l7rt != nil {
		l7rt.handOff()
	}
	return nil
}

// l7Runtime is the running proxy and its intercept.
type l7Runtime struct {
	proxy *l7.Proxy
	icpt  *intercept.Interceptor
	// borrowed is true while the intercept runs on a predecessor's
	// listeners and routes and the predecessor has not handed off: if this
	// daemon stops then, it leaves them to the predecessor.
	borrowed bool
	done     atomic.Bool // stopping: the accept loops' errors are expected
}

// startL7 starts the proxy and the intercept in the daemon's network
// namespace (on a predecessor's listeners when inherit holds them), hands
// them to restore, and serves the intercepted listeners; a signal on
// reopen reopens the access log.
func startL7(ctx context.Context, cfg L7Config, log *slog.Logger, inherit []*net.TCPListener, reopen <-chan os.Signal, restore func(*l7.Proxy, *intercept.Interceptor) error) (*l7Runtime, error) {
	proxy, err := l7.New(l7.Options{Logger: log, Limits: cfg.limits()})
	if err != nil {
		return nil, err
	}
	icpt, err := intercept.New(intercept.Options{Logger: log, Inherit: inherit})
	if err != nil {
		proxy.Close()
		for _, ln := range inherit {
			ln.Close()
		}
		return nil, fmt.Errorf("l7 intercept (set l7.disabled to run without the proxy): %w", err)
	}
	rt := &l7Runtime{proxy: proxy, icpt: icpt, borrowed: len(inherit) > 0}
	if err := restore(proxy, icpt); err != nil {
		rt.stop()
		return nil, err
	}
	if rt.borrowed {
		// What the predecessor steered and this daemon's state does not.
		if err := icpt.DropStale(); err != nil {
			log.Warn("remove the local routes of the daemon before", "err", err)
		}
	}
	for _, ln := range icpt.Listeners() {
		go func() {
			if err := proxy.Serve(ln); err != nil && ctx.Err() == nil && !rt.done.Load() {
				log.Error("proxy listener failed", "addr", ln.Addr(), "err", err)
			}
		}()
	}
	// logrotate moves the access log and sends SIGUSR1.
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-reopen:
				if err := proxy.AccessLog().Reopen(); err != nil {
					log.Error("reopen the access log", "err", err)
				}
			}
		}
	}()
	return rt, nil
}

// ownEverything marks the predecessor gone: from now on stop removes the
// routes.
func (rt *l7Runtime) ownEverything() {
	if rt != nil {
		rt.borrowed = false
	}
}

// stop removes the intercept (its routes and its program, unless they are
// still borrowed) and drains requests in flight, a few seconds at most.
func (rt *l7Runtime) stop() {
	if rt.done.Swap(true) {
		return
	}
	if rt.borrowed {
		_ = rt.icpt.Handoff()
	} else {
		_ = rt.icpt.Close()
	}
	rt.drain(5 * time.Second)
}

// handOff leaves the intercept to the successor and drains.
func (rt *l7Runtime) handOff() {
	rt.done.Store(true)
	_ = rt.icpt.Handoff()
	rt.drain(handoffDrain)
}

func (rt *l7Runtime) drain(d time.Duration) {
	shutdown, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_ = rt.proxy.Shutdown(shutdown)
}

// NewServer builds the API over an ACL state; the daemon and tests use it.
func NewServer(state *aclState, svcs *svcState, status func() Status, stats func() (Stats, error), maxBody int64) *Server {
	reg, observe := newRegistry(stats, state)
	state.observeSync = observe
	return &Server{acl: state, svc: svcs, status: status, stats: stats, registry: reg, maxBody: maxBody}
}

// configureLB writes the L4 settings and the attached interfaces' MACs and
// MTUs (the source MAC of forwarded frames; the size past which the
// datapath answers "too big").
func configureLB(lb *maps.LB, cfg L4Config, atts []l4.Attachment) error {
	settings, err := cfg.settings()
	if err != nil {
		return err
	}
	if err := lb.SetSettings(settings); err != nil {
		return err
	}
	for _, a := range atts {
		ifc, err := net.InterfaceByIndex(a.Ifindex)
		if err != nil {
			return fmt.Errorf("interface %s: %w", a.Iface, err)
		}
		if err := lb.SetIface(ifc.Index, ifc.HardwareAddr, ifc.MTU); err != nil {
			return err
		}
	}
	return nil
}

// refreshNextHops re-resolves the backends' next hops every few seconds:
// neighbours that answered late, MACs and routes that moved.
func refreshNextHops(ctx context.Context, rec *l4.Reconciler, log *slog.Logger) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := rec.Refresh(); err != nil {
				log.Warn("next-hop refresh", "err", err)
			}
		}
	}
}

func openState(cfg Config, log *slog.Logger) (*Store, State, error) {
	store, err := OpenStore(cfg.StateDir)
	var st State
	if err == nil {
		st, err = store.Load()
		if err != nil {
			store.Close()
		}
	}
	if err == nil {
		return store, st, nil
	}
	if !errors.Is(err, ErrCorruptStore) || !cfg.ResetState {
		if errors.Is(err, ErrCorruptStore) {
			return nil, st, fmt.Errorf("%w; refusing to start with emptied lists (start with --reset-state to move it aside and begin empty)", err)
		}
		return nil, st, err
	}
	moved, merr := MoveAside(cfg.StateDir)
	if merr != nil {
		return nil, st, merr
	}
	log.Warn("state store was corrupt; moved aside, starting empty", "moved_to", moved, "err", err)
	store, err = OpenStore(cfg.StateDir)
	return store, State{}, err
}

// applyConfigState applies the policy and protect prefixes of the config file
// or flags when they are set.
func applyConfigState(state *aclState, cfg Config) error {
	if cfg.Policy != "" {
		if err := state.setPolicy(cfg.Policy); err != nil {
			return fmt.Errorf("apply configured policy: %w", err)
		}
	}
	if cfg.Protect != nil {
		ps := make([]netip.Prefix, 0, len(cfg.Protect))
		for _, s := range cfg.Protect {
			p, err := ParseEntry(s)
			if err != nil {
				return fmt.Errorf("protect %q: %w", s, err)
			}
			ps = append(ps, p)
		}
		if err := state.setProtect(ps); err != nil {
			return fmt.Errorf("apply configured protect prefixes: %w", err)
		}
	}
	return nil
}

// serveAPI serves until ctx is done or a signal arrives on upgrade, which
// it reports. onServing runs once every listener is open.
func serveAPI(ctx context.Context, cfg APIConfig, srv *Server, log *slog.Logger, upgrade <-chan os.Signal, onServing func()) (upgraded bool, err error) {
	ln, err := listenUnix(cfg.Socket)
	if err != nil {
		return false, err
	}
	servers := []*http.Server{{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	listeners := []net.Listener{ln}
	if cfg.Listen != "" {
		tln, token, err := listenTCPAPI(cfg)
		if err != nil {
			ln.Close()
			return false, err
		}
		servers = append(servers, &http.Server{Handler: TokenHandler(srv.Handler(), token), ReadHeaderTimeout: 10 * time.Second})
		listeners = append(listeners, tln)
	}
	errc := make(chan error, len(servers))
	for i, s := range servers {
		log.Info("api listening", "addr", listeners[i].Addr().String())
		go func() { errc <- s.Serve(listeners[i]) }()
	}
	onServing()
	select {
	case <-ctx.Done():
	case err = <-errc:
	case <-upgrade:
		upgraded = true
		log.Info("SIGUSR2: upgrading in place; the API pauses until the successor serves it")
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(shutdown)
	}
	_ = os.Remove(cfg.Socket)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return upgraded, err
}

// listenTCPAPI opens the token-guarded TCP API listener.
func listenTCPAPI(cfg APIConfig) (net.Listener, string, error) {
	tok, err := os.ReadFile(cfg.TokenFile)
	if err != nil {
		return nil, "", fmt.Errorf("read api token: %w", err)
	}
	token := strings.TrimSpace(string(tok))
	if token == "" {
		return nil, "", fmt.Errorf("api token file %s is empty", cfg.TokenFile)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	return ln, token, nil
}

// listenUnix listens on path, removing a stale socket left by a crash.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("socket %s is in use: is another sluice running?", path)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return ln, nil
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
