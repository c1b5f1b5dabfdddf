// Command sluiceproxy runs Sluice's L7 proxy (l7.New, Apply, Serve) on one
// loopback listener with one virtual server, one location "/" and one
// upstream, for scripts/l7bench. The listener's own address is the L7
// service's endpoint, as in the l7 tests.
//
//	sluiceproxy -listen 127.0.0.1:PORT -backend 127.0.0.1:PORT
//
// With -cpuprofile and -memprofile it writes pprof profiles when it gets
// SIGTERM or SIGINT (the CPU profile covers the process's whole life, so
// the caller starts it just before the load it wants measured).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/sluicelb/sluice/l7"
	"github.com/sluicelb/sluice/l7/upstream"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on (loopback)")
	backend := flag.String("backend", "", "the upstream server, host:port")
	keepalive := flag.Int("keepalive", 64, "idle upstream connections kept")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile here on exit")
	memProfile := flag.String("memprofile", "", "write an allocation profile here on exit")
	flag.Parse()
	if err := run(*listen, *backend, *keepalive, *cpuProfile, *memProfile); err != nil {
		fmt.Fprintln(os.Stderr, "sluiceproxy:", err)
		os.Exit(1)
	}
}

func run(listen, backend string, keepalive int, cpuProfile, memProfile string) error {
	if backend == "" {
		return fmt.Errorf("-backend is required")
	}
	if memProfile != "" {
		runtime.MemProfileRate = 64 << 10
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	p, err := l7.New(l7.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("new proxy: %w", err)
	}
	defer p.Close()
	// Not MPTCP, as the daemon's listeners (the SOCKMAP refuses MPTCP).
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp4", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	cfg := l7.Config{
		Endpoints: map[string]netip.AddrPort{"web": ln.Addr().(*net.TCPAddr).AddrPort()},
		VServers: []l7.VServer{{Name: "web", Service: "web",
			Locations: []l7.Location{{Name: "root", Path: "/", Upstream: "backend"}}}},
		Upstreams: []upstream.Config{{Name: "backend", KeepAlive: keepalive,
			Servers: []upstream.ServerConfig{{ID: 1, Addr: backend}}}},
	}
	if err := p.Apply(cfg); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	fmt.Println("listening", ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}
	if memProfile != "" {
		f, err := os.Create(memProfile)
		if err != nil {
			return fmt.Errorf("mem profile: %w", err)
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return fmt.Errorf("mem profile: %w", err)
		}
	}
	return nil
}
