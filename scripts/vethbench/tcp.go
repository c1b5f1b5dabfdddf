package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/sluicelb/sluice/bpf"
	"github.com/sluicelb/sluice/l4"
	testlab "github.com/sluicelb/sluice/test/lab"
)

// The TCP comparison with HAProxy. A packet generator cannot drive a TCP
// proxy: HAProxy terminates connections, and frames of no connection are
// dropped by its kernel. So both contenders carry real TCP connections from
// the same clients to the same backends, on the same CPUs, and the rate
// compared is connections per second, each one short request and reply
// (connect, 16 bytes each way, the backend closes): what a proxy costs per
// new connection. Sluice forwards the client's packets in XDP (dsr-ipip) and
// the backends decapsulate them with Sluice's decap program and answer the
// client directly through the kernel's forwarding in the load balancer's
// namespace; HAProxy (mode tcp, round robin) terminates and reopens each
// connection. The clients and the backends need CPU of their own, which both
// contenders pay alike: the ratio is of end-to-end connection rates, not of
// the load balancers' costs alone. Those are printed too, as CPU time per
// connection: Sluice's XDP program's run time as the kernel counts it, and
// HAProxy's process time (which leaves out some of the kernel's work for its
// sockets, to HAProxy's advantage).
var (
	tcpWorkers  = flag.Int("tcp-workers", 32, "l4: concurrent client connections in the TCP comparison")
	tcpDuration = flag.Duration("tcp-duration", 3*time.Second, "l4: how long each TCP contender runs")
)

const tcpPort = 9100

// tcpLab prepares the namespaces for real TCP after the frame runs: routes
// both ways, the VIP on the backends' loopback, the backends' addresses on
// beB, and Sluice's decap program on beB in place of the counter.
func (l l4lab) tcpLab() (func(), error) {
	cmds := [][]string{
		{"ip", "-n", l.gen, "route", "add", "default", "via", "10.98.0.2"},
		{"ip", "-n", l.be, "addr", "add", "10.97.0.1/24", "dev", l.beB},
		{"ip", "-n", l.be, "route", "add", "default", "via", "10.97.0.254"},
		{"ip", "-n", l.be, "addr", "add", l4VIP.String() + "/32", "dev", "lo"},
		{"ip", "-n", l.be, "link", "set", "lo", "up"},
		{"ip", "-n", l.gen, "link", "set", "lo", "up"},
		{"ip", "-n", l.lb, "link", "set", "lo", "up"},
		// The backends answer from the VIP, which the load balancer's
		// namespace has no route to: no reverse-path filter there.
		{"ip", "netns", "exec", l.lb, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"},
		{"ip", "netns", "exec", l.lb, "sysctl", "-qw", "net.ipv4.conf." + l.lbB + ".rp_filter=0"},
		{"ip", "netns", "exec", l.gen, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000"},
		// A veth leaves TCP checksums to the receiver (CHECKSUM_PARTIAL);
		// XDP on the other side forwards the frame as it is, so the client
		// fills them in itself, as a client behind a real NIC would.
		{"ip", "netns", "exec", l.gen, "ethtool", "-K", l.genIf, "tx", "off"},
	}
	for i := 1; i < *backends; i++ {
		cmds = append(cmds, []string{"ip", "-n", l.be, "addr", "add", backendAddr(i).String() + "/32", "dev", l.beB})
	}
	for _, c := range cmds {
		if err := sh(c...); err != nil {
			return nil, err
		}
	}
	var objs bpf.DecapObjects
	if err := bpf.LoadDecapObjects(&objs, nil); err != nil {
		return nil, err
	}
	key := bpf.XDPSvcKey{Family: 4}
	vip := l4VIP.As4()
	copy(key.Addr[:], vip[:])
	if err := objs.DecapVips.Put(key, uint32(1)); err != nil {
		objs.Close()
		return nil, err
	}
	var lk link.Link
	err := testlab.InNS(l.be, func() error {
		i, err := net.InterfaceByName(l.beB)
		if err != nil {
			return err
		}
		lk, err = link.AttachXDP(link.XDPOptions{Program: objs.SluiceDecap, Interface: i.Index, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		objs.Close()
		return nil, fmt.Errorf("attach decap: %w", err)
	}
	return func() { lk.Close(); objs.Close() }, nil
}

// backendServer listens on every address of the backends' namespace: it
// reads 16 bytes, answers 16 and closes.
func (l l4lab) backendServer() (func(), error) {
	var ln net.Listener
	err := testlab.InNS(l.be, func() error {
		var lc net.ListenConfig
		lc.SetMultipathTCP(false)
		var err error
		ln, err = lc.Listen(context.Background(), "tcp4", fmt.Sprintf(":%d", tcpPort))
		return err
	})
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 16)
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				_, _ = c.Write(buf)
			}()
		}
	}()
	return func() { ln.Close() }, nil
}

// connections runs *tcpWorkers clients in the generator's namespace against
// the VIP for *tcpDuration and returns how many connections completed, in
// how long.
func (l l4lab) connections() (uint64, time.Duration, error) {
	target := netip.AddrPortFrom(l4VIP, tcpPort).String()
	var done, failed atomic.Uint64
	var errMu sync.Mutex
	var firstErr error
	noteErr := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(*tcpDuration)
	for range *tcpWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The thread stays in the namespace and ends with the goroutine.
			runtime.LockOSThread()
			ns, err := netns.GetFromName(l.gen)
			if err == nil {
				err = netns.Set(ns)
				ns.Close()
			}
			if err != nil {
				noteErr(err)
				return
			}
			d := net.Dialer{Timeout: time.Second}
			d.SetMultipathTCP(false)
			msg := []byte("sluice-bench-req")
			for time.Now().Before(deadline) {
				if err := oneRequest(&d, target, msg); err != nil {
					failed.Add(1)
					noteErr(err)
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failed.Load(); f > done.Load()/100 {
		return 0, 0, fmt.Errorf("%d of %d connections failed: %v", f, f+done.Load(), firstErr)
	}
	if done.Load() == 0 {
		return 0, 0, fmt.Errorf("no connection completed: %v", firstErr)
	}
	return done.Load(), elapsed, nil
}

func oneRequest(d *net.Dialer, target string, msg []byte) error {
	c, err := d.Dial("tcp4", target)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	buf, err := io.ReadAll(c) // the backend closes first: no TIME_WAIT on the client
	if err != nil {
		return err
	}
	if len(buf) != len(msg) {
		return fmt.Errorf("reply of %d bytes", len(buf))
	}
	return nil
}

// sluiceTCP is Sluice with a dsr-ipip TCP service on the VIP. Its CPU time
// is its XDP program's run time as the kernel counts it (BPF_STATS_RUN_TIME).
func (l l4lab) sluiceTCP(beMAC net.HardwareAddr) (func(), func() (time.Duration, error), error) {
	cleanup, prog, err := l.sluiceService(l4.Service{Name: "bench-tcp", VIP: l4VIP, Port: tcpPort, Proto: l4.TCP, Mode: l4.ModeDSRIPIP}, beMAC)
	if err != nil {
		return nil, nil, err
	}
	cpu := func() (time.Duration, error) {
		st, err := prog.Stats()
		if err != nil {
			return 0, err
		}
		return st.Runtime, nil
	}
	return cleanup, cpu, nil
}

// processCPU is a process's user and system time from /proc.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses: utime
	// and stime are the 12th and 13th of them, in clock ticks (USER_HZ 100).
	s := string(b)
	fs := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fs) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fs))
	}
	var ticks int64
	for _, f := range fs[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// haproxy runs HAProxy in mode tcp on the VIP in the load balancer's
// namespace, round robin over the same backends.
// Its CPU time is the process's user and system time: the kernel's softirq
// work for its sockets is not all in it, which favours HAProxy.
func (l l4lab) haproxy() (func(), func() (time.Duration, error), error) {
	cleanup, cmd, err := l.startHAProxy()
	if err != nil {
		return nil, nil, err
	}
	return cleanup, func() (time.Duration, error) { return processCPU(cmd.Process.Pid) }, nil
}

func (l l4lab) startHAProxy() (func(), *exec.Cmd, error) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		return nil, nil, errors.New("haproxy is not installed (make bench installs it)")
	}
	dir, err := os.MkdirTemp("", "vethbench-haproxy-")
	if err != nil {
		return nil, nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global\n maxconn 8000\n\ndefaults\n mode tcp\n timeout connect 2s\n timeout client 5s\n timeout server 5s\n\n")
	fmt.Fprintf(&b, "frontend vip\n bind %s:%d\n default_backend pool\n\nbackend pool\n balance roundrobin\n", l4VIP, tcpPort)
	for i := range *backends {
		fmt.Fprintf(&b, " server b%d %s:%d\n", i, backendAddr(i), tcpPort)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	if err := sh("ip", "-n", l.lb, "addr", "add", l4VIP.String()+"/32", "dev", "lo"); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	cmd := exec.Command("ip", "netns", "exec", l.lb, "haproxy", "-db", "-f", cfg)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cleanup := func() {
		stopHAProxy()
		_ = sh("ip", "-n", l.lb, "addr", "del", l4VIP.String()+"/32", "dev", "lo")
		os.RemoveAll(dir)
	}
	if err := cmd.Start(); err != nil {
		cleanup()
		return nil, nil, err
	}
	haproxyMu.Lock()
	haproxyCmd, haproxyDir = cmd, dir
	haproxyMu.Unlock()
	// Ready when it accepts from the clients' namespace.
	for i := 0; ; i++ {
		var c net.Conn
		err := testlab.InNS(l.gen, func() error {
			var err error
			c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(l4VIP, tcpPort).String(), 200*time.Millisecond)
			return err
		})
		if err == nil {
			c.Close()
			return cleanup, cmd, nil
		}
		if i == 50 {
			cleanup() // waits for HAProxy: its output is complete
			return nil, nil, fmt.Errorf("haproxy does not accept: %v: %s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// haproxyCmd is the running HAProxy, if any, and haproxyDir its
// configuration's directory; shared with the signal handler.
var (
	haproxyMu  sync.Mutex
	haproxyCmd *exec.Cmd
	haproxyDir string
)

// stopHAProxy kills the HAProxy this program started, by its process id,
// and removes its configuration.
func stopHAProxy() {
	haproxyMu.Lock()
	defer haproxyMu.Unlock()
	if haproxyCmd != nil {
		_ = haproxyCmd.Process.Kill()
		_ = haproxyCmd.Wait()
		_ = os.RemoveAll(haproxyDir)
		haproxyCmd, haproxyDir = nil, ""
	}
}

// runTCP measures the connection rates of Sluice and HAProxy, and the CPU
// time each load balancer spent per connection, and prints
// "name connections-per-second" and "name_cpu nanoseconds-per-connection".
func (l l4lab) runTCP(beMAC net.HardwareAddr) error {
	undoLab, err := l.tcpLab()
	if err != nil {
		return err
	}
	defer undoLab()
	stop, err := l.backendServer()
	if err != nil {
		return err
	}
	defer stop()
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return fmt.Errorf("enable bpf run time stats: %w", err)
	}
	defer stats.Close()
	for _, c := range []struct {
		name  string
		setup func() (func(), func() (time.Duration, error), error)
	}{
		{"sluice_tcp_conn", func() (func(), func() (time.Duration, error), error) { return l.sluiceTCP(beMAC) }},
		{"haproxy_tcp_conn", l.haproxy},
	} {
		cleanup, cpu, err := c.setup()
		if err != nil {
			fmt.Fprintf(os.Stderr, "vethbench: %s: %v\n", c.name, err)
			fmt.Printf("%s not-measured\n%s_cpu not-measured\n", c.name, c.name)
			continue
		}
		cpu0, err0 := cpu()
		conns, elapsed, err := l.connections()
		cpu1, err1 := cpu()
		cleanup()
		if err != nil {
			fmt.Fprintf(os.Stderr, "vethbench: %s: %v\n", c.name, err)
			fmt.Printf("%s not-measured\n%s_cpu not-measured\n", c.name, c.name)
			continue
		}
		fmt.Printf("%s %.0f\n", c.name, float64(conns)/elapsed.Seconds())
		if err := errors.Join(err0, err1); err != nil {
			fmt.Fprintf(os.Stderr, "vethbench: %s cpu: %v\n", c.name, err)
			fmt.Printf("%s_cpu not-measured\n", c.name)
			continue
		}
		fmt.Printf("%s_cpu %.0f\n", c.name, float64(cpu1-cpu0)/float64(conns))
	}
	return nil
}
