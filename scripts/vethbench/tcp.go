package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/sluicelb/sluice/bpf/bench"
	"github.com/sluicelb/sluice/l4"
	testlab "github.com/sluicelb/sluice/test/lab"
)

// The TCP comparison with HAProxy, driven like the forwarding runs by the
// live-frames generator, or where the kernel refuses that mode by seed frames
// that tcp_client turns into the same SYNs (seedTCP). A TCP proxy terminates connections, so frames of no
// connection would only be refused: the generator opens connections instead
// (SYNs from many client addresses and ports), and stateless TCP endpoints in
// XDP carry them on (bpf/bench/tcp.c): on the clients' veth one sends the
// 16-byte request and closes when its echo comes, on the backends' veth one
// accepts, echoes and closes. Each costs a few XDP runs per connection, so
// the rate compared is the load balancer's and not the endpoints'. Sluice
// forwards the clients' segments in XDP (dsr-ipip) and the backends answer
// the clients straight over the clients' link, the network's way back that
// direct server return takes around the load balancer; HAProxy (mode tcp,
// round robin, one thread on the core where Sluice's XDP runs) accepts each
// connection and opens one to a backend, whose answers come back to it.
// Each contender is offered
// rising rates of new connections, 25% more a step, until it completes less
// than 95% of two steps in a row; its rate is the most connections per
// second it completed in a step (request out, echo back). The load
// balancers' CPU time per connection is printed too: Sluice's XDP program's
// run time as the kernel counts it, HAProxy's process time (which leaves out
// some of the kernel's work for its sockets, to HAProxy's advantage).
var (
	tcpStep    = flag.Duration("tcp-step", time.Second, "l4: how long the TCP comparison offers each rate")
	tcpVerbose = flag.Bool("tcp-verbose", false, "l4: print each step of the TCP comparison on stderr")
)

const tcpPort = 9100

// tcpClients are the generator's client addresses, routed to the clients'
// namespace by the load balancer's.
var tcpClients = netip.MustParsePrefix("10.99.0.0/16")

// tcpEndpoints are the stateless endpoints and generator of tcp.c, attached.
type tcpEndpoints struct {
	objs                 bench.TCPObjects
	client, server, pass link.Link
	// seeded: the kernel refuses live frames, so the SYNs are made by
	// tcp_client from seed frames (seedTCP) instead of by tcp_syn_gen.
	seeded bool
}

func (e *tcpEndpoints) close() {
	for _, lk := range []link.Link{e.client, e.server, e.pass} {
		if lk != nil {
			lk.Close()
		}
	}
	e.objs.Close()
}

// events sums a tcp.c event counter over the CPUs.
func (e *tcpEndpoints) events(ev uint32) (uint64, error) {
	var vs []uint64
	if err := e.objs.TcpEvents.Lookup(ev, &vs); err != nil {
		return 0, err
	}
	var n uint64
	for _, v := range vs {
		n += v
	}
	return n, nil
}

// tcpEvents names the events of tcp.c (enum tcp_event), in order; tcpDone
// is the echoes the clients received, one a completed connection.
var tcpEvents = []string{"opened", "done", "bad reply", "answered", "ignored", "failed"}

const tcpDone = 1

// summary names the endpoints' event counts, for a reader of stderr who
// wonders where the connections went.
func (e *tcpEndpoints) summary() string {
	var b strings.Builder
	for i, name := range tcpEvents {
		n, err := e.events(uint32(i))
		if err != nil {
			return err.Error()
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", name, n)
	}
	return b.String()
}

// tcpLab routes the clients' addresses through the load balancer's namespace
// and attaches the endpoints: tcp_client on genIf, tcp_server on beB in place
// of the counter.
func (l l4lab) tcpLab() (*tcpEndpoints, error) {
	genMAC, err := macOf(l.gen, l.genIf)
	if err != nil {
		return nil, err
	}
	lbMAC, err := macOf(l.lb, l.lbA)
	if err != nil {
		return nil, err
	}
	for _, c := range [][]string{
		{"ip", "-n", l.lb, "route", "add", tcpClients.String(), "via", "10.98.0.1", "dev", l.lbA},
		{"ip", "-n", l.lb, "neigh", "replace", "10.98.0.1", "lladdr", genMAC.String(), "dev", l.lbA, "nud", "permanent"},
		{"ip", "-n", l.lb, "link", "set", "lo", "up"},
		// HAProxy's readiness check dials the VIP from the clients' own address.
		{"ip", "-n", l.gen, "route", "add", "default", "via", "10.98.0.2"},
	} {
		if err := sh(c...); err != nil {
			return nil, err
		}
	}
	spec, err := bench.LoadTCP()
	if err != nil {
		return nil, err
	}
	vip := l4VIP.As4()
	cnet := tcpClients.Addr().As4()
	mask := net.CIDRMask(tcpClients.Bits(), 32)
	for name, v := range map[string]any{
		"lb_mac": [6]byte(lbMAC), "client_mac": [6]byte(genMAC), "vip": vip,
		"vport": [2]byte{tcpPort >> 8, tcpPort & 0xff}, "client_net": cnet, "client_mask": [4]byte(mask),
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("tcp.c %s: %w", name, err)
		}
	}
	e := &tcpEndpoints{}
	if err := spec.LoadAndAssign(&e.objs, nil); err != nil {
		return nil, err
	}
	lbIdx, err := ifindexOf(l.lb, l.lbA)
	if err == nil {
		// The devmap resolves an ifindex in the caller's namespace.
		err = testlab.InNS(l.lb, func() error { return e.objs.ToClients.Put(uint32(0), uint32(lbIdx)) })
	}
	if err == nil {
		e.server, err = attachXDP(l.be, l.beB, e.objs.TcpServer)
	}
	if err == nil {
		// The server's XDP_TX answers to HAProxy reach the load balancer's
		// stack through an XDP program on lbB: a veth takes XDP frames in
		// only then (GRO alone left them in its ring here).
		e.pass, err = attachXDP(l.lb, l.lbB, e.objs.XdpPass)
	}
	if err == nil {
		e.client, err = attachXDP(l.gen, l.genIf, e.objs.TcpClient)
	}
	if err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// attachXDP attaches prog to ifname in namespace ns, in driver mode.
func attachXDP(ns, ifname string, prog *ebpf.Program) (link.Link, error) {
	var lk link.Link
	err := testlab.InNS(ns, func() error {
		i, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		lk, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: i.Index, Flags: link.XDPDriverMode})
		return err
	})
	return lk, err
}

// offer runs the generator (tcp_syn_gen) for about *tcpStep, from the
// generator's namespace on the last CPU, sending rate SYNs per second; it
// returns how many it sent and for how long. loopRate is how many frames per
// second the generator's run goes through (SYNs and the frames dropped
// between them), measured anew by each run for the next one's length.
func (l l4lab) offer(e *tcpEndpoints, genIdx int, rate float64, loopRate *float64) (uint64, time.Duration, error) {
	// The count of SYNs goes on from run to run, and so do the clients: a
	// 4-tuple used again would meet its TIME_WAIT at HAProxy.
	var pace bench.TCPGenPace
	if err := e.objs.GenPace.Lookup(uint32(0), &pace); err != nil {
		return 0, 0, err
	}
	before := pace.Sent
	pace.IntervalNs, pace.NextNs = uint64(1e9/rate), 0
	if err := e.objs.GenPace.Put(uint32(0), pace); err != nil {
		return 0, 0, err
	}
	var elapsed time.Duration
	var err error
	if e.seeded {
		elapsed, err = l.seedTCP(*tcpStep, rate)
	} else {
		frames := uint32(min(*loopRate*tcpStep.Seconds(), 1<<31))
		// Ethernet, IPv4, TCP: tcp_syn_gen writes them all.
		elapsed, err = generate(l.gen, e.objs.TcpSynGen, make([]byte, 54), genIdx, frames)
		if err == nil {
			*loopRate = float64(frames) / elapsed.Seconds()
		}
	}
	if err != nil {
		return 0, 0, err
	}
	if err := e.objs.GenPace.Lookup(uint32(0), &pace); err != nil {
		return 0, 0, err
	}
	return pace.Sent - before, elapsed, nil
}

// capacity offers rising rates of new connections until fewer than 95%
// complete two steps in a row, and returns the most completed per second
// in a step and the connections completed over all the steps.
func (l l4lab) capacity(e *tcpEndpoints, genIdx int) (float64, uint64, error) {
	if err := pinNAPI(l.lbA, runtime.NumCPU()-2); err != nil {
		return 0, 0, err
	}
	var best float64
	var total uint64
	loopRate := 5e6 // a first guess; each run measures it
	misses := 0
	for rate := 2000.0; rate < 5e6 && misses < 2; rate *= 1.25 {
		before, err := e.events(tcpDone)
		if err != nil {
			return 0, 0, err
		}
		sent, elapsed, err := l.offer(e, genIdx, rate, &loopRate)
		if err != nil {
			return 0, 0, err
		}
		time.Sleep(200 * time.Millisecond) // the last answers
		after, err := e.events(tcpDone)
		if err != nil {
			return 0, 0, err
		}
		done := after - before
		total += done
		best = max(best, float64(done)/elapsed.Seconds())
		if *tcpVerbose {
			fmt.Fprintf(os.Stderr, "vethbench: offered %.0f/s for %v: %d sent, %d done (%s)\n",
				rate, elapsed.Round(time.Millisecond), sent, done, e.summary())
		}
		if float64(done) < 0.95*float64(sent) {
			misses++
		} else {
			misses = 0
		}
	}
	if total == 0 {
		return 0, 0, fmt.Errorf("no connection completed (endpoints: %s)", e.summary())
	}
	return best, total, nil
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
	// On the load balancer's CPU, where Sluice's XDP runs (the NAPI thread
	// of lbA): one thread, as each load balancer has one core.
	cmd := exec.Command("ip", "netns", "exec", l.lb, "taskset", "-c", strconv.Itoa(runtime.NumCPU()-2), "haproxy", "-db", "-f", cfg)
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
	e, err := l.tcpLab()
	if err != nil {
		return err
	}
	defer e.close()
	genIdx, err := ifindexOf(l.gen, l.genIf)
	if err != nil {
		return err
	}
	if err := probeLiveFrames(l.gen, genIdx); err != nil {
		var se setupError
		if !errors.As(err, &se) {
			return err
		}
		fmt.Fprintf(os.Stderr, "vethbench: TCP comparison: %v; seeding the generator with a packet socket instead\n", err)
		e.seeded = true
		fmt.Println("tcp_generator seeded")
	}
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
		{"haproxy_tcp_conn", func() (func(), func() (time.Duration, error), error) {
			cleanup, cpu, err := l.haproxy()
			if err != nil || !e.seeded {
				return cleanup, cpu, err
			}
			// The SYNs tcp_client sends from its veth's NAPI reach the
			// kernel's stack on lbA only through an XDP program there (as
			// the server's answers on lbB): GRO alone left them in its ring.
			pass, err := attachXDP(l.lb, l.lbA, e.objs.XdpPass)
			if err != nil {
				cleanup()
				return nil, nil, err
			}
			return func() { pass.Close(); cleanup() }, cpu, nil
		}},
	} {
		cleanup, cpu, err := c.setup()
		if err != nil {
			fmt.Fprintf(os.Stderr, "vethbench: %s: %v\n", c.name, err)
			fmt.Printf("%s not-measured\n%s_cpu not-measured\n", c.name, c.name)
			continue
		}
		cpu0, err0 := cpu()
		rate, conns, err := l.capacity(e, genIdx)
		cpu1, err1 := cpu()
		cleanup()
		if err != nil {
			fmt.Fprintf(os.Stderr, "vethbench: %s: %v\n", c.name, err)
			fmt.Printf("%s not-measured\n%s_cpu not-measured\n", c.name, c.name)
			continue
		}
		fmt.Printf("%s %.0f\n", c.name, rate)
		if err := errors.Join(err0, err1); err != nil {
			fmt.Fprintf(os.Stderr, "vethbench: %s cpu: %v\n", c.name, err)
			fmt.Printf("%s_cpu not-measured\n", c.name)
			continue
		}
		fmt.Printf("%s_cpu %.0f\n", c.name, float64(cpu1-cpu0)/float64(conns))
	}
	return nil
}

// seedTCP stands in for the live-frames generator where the kernel refuses
// that mode: for d, from the load balancer's namespace and on the last CPU
// (the generator's), it sends seed frames (SEED_PROTO in bpf/bench/tcp.c)
// through a packet socket out of the load balancer's side of the clients'
// link; tcp_client, on the clients' side, turns each into the generator's
// next SYN, paced as tcp_syn_gen paces, and sends it back in. The seeds
// cost the generator's CPU, not the load balancer's, whose work per
// connection stays what it is with live frames. The seeds come one by one
// at twice the rate offered (tcp_syn_gen turns one seed of a burst into a
// SYN, so they must be spread): a flood of them filled the clients' veth's
// ring, where the answers arrive too, and lost 2-6% of the connections at
// any rate, which ended some runs' ramps at 2,500/s. It returns how long
// it sent.
func (l l4lab) seedTCP(d time.Duration, rate float64) (time.Duration, error) {
	genMAC, err := macOf(l.gen, l.genIf)
	if err != nil {
		return 0, err
	}
	var elapsed time.Duration
	err = onGeneratorCPU(l.lb, func() error {
		const seedProto = 0x88b5
		fd, ifc, err := packetSocket(l.lbA)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		seed := make([]byte, 60) // room for the SYN tcp_client writes over it
		copy(seed[0:6], genMAC)
		copy(seed[6:12], ifc.HardwareAddr)
		seed[12], seed[13] = seedProto>>8, seedProto&0xff
		gap := time.Duration(1e9 / max(2*rate, 4000))
		start := time.Now()
		next := start
		for now := start; now.Sub(start) < d; now = time.Now() {
			if now.Before(next) {
				if wait := next.Sub(now); wait > 200*time.Microsecond {
					time.Sleep(wait)
				}
				continue // a shorter wait is spun: a sleep overshoots it
			}
			next = next.Add(gap)
			if next.Before(now.Add(-10 * gap)) {
				next = now // behind: no catching-up burst
			}
			if _, err := sendFrame(fd, seed); err != nil { // a seed the socket had no room for is only skipped
				return err
			}
		}
		elapsed = time.Since(start)
		return nil
	})
	return elapsed, err
}
