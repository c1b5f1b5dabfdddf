// Command vethbench measures packet rates on veth pairs driven by a
// live-frames XDP generator (BPF_F_TEST_XDP_LIVE_FRAMES). It prints one
// "name packets-per-second" line per contender ("name not-measured" when a
// contender could not be set up). Root only; used by `make bench`. The
// generator has the last CPU, the receiving veth's processing (threaded
// NAPI) the one before: see measureWith. The contenders take turns for -runs
// rounds and each one's best run counts: see bestOfRounds.
//
// -mode acl (the default): the generator in one namespace sends frames whose
// source is in a 1M-entry list to its peer in another, where Sluice's XDP
// ACL, iptables (raw table) with an ipset, or an nftables set drops them.
//
// -mode l4: the generator sends UDP frames to a VIP from many source ports
// (one flow each) to a load balancer's namespace, which forwards them to
// backends behind a second veth: Sluice's XDP L4 path (dsr-ipip and dsr-l2,
// redirected to the second veth) or nftables DNAT (numgen round robin) in the
// kernel's forwarding path. Forwarded frames are counted where they arrive,
// on the backends' veth; see l4.go. Where the kernel refuses live frames,
// frames seeded once go round a loop instead, from the backends' veth back
// to the load balancer's input; see loop.go. Then the generator opens TCP
// connections, which stateless XDP endpoints carry on, through Sluice and
// through HAProxy at rising rates, printed as "name connections-per-second"
// and "name_cpu load-balancer-nanoseconds-per-connection"; see tcp.go.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/sluicelb/sluice/bpf"
	"github.com/sluicelb/sluice/bpf/bench"
	"github.com/sluicelb/sluice/maps"
	testlab "github.com/sluicelb/sluice/test/lab"
)

const bpfFTestXDPLiveFrames = 1 << 1

var (
	packets = flag.Int("packets", 4_000_000, "frames per run")
	runs    = flag.Int("runs", 3, "rounds in which each contender runs -packets frames in turn; its best rate counts")
	list    = flag.String("list", "", "acl: list file (one IPv4 address or prefix per line); the source 10.98.0.1 is added")
	mode    = flag.String("mode", "acl", "acl: drop rates of ACLs; l4: forwarding rates of L4 load balancing")
)

type lab struct{ gen, rx, genIf, rxIf string }

func main() {
	flag.Parse()
	var err error
	switch {
	case *runs < 1:
		err = fmt.Errorf("-runs %d: want at least 1", *runs)
	case *mode == "acl":
		err = run()
	case *mode == "l4":
		err = runL4()
	default:
		err = fmt.Errorf("-mode %q: want acl or l4", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vethbench:", err)
		os.Exit(1)
	}
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func run() error {
	id := strconv.Itoa(os.Getpid() % 100000)
	l := lab{gen: "slvb-gen-" + id, rx: "slvb-rx-" + id, genIf: "vbg" + id, rxIf: "vbr" + id}
	removeNS := func() {
		_ = exec.Command("ip", "netns", "del", l.gen).Run()
		_ = exec.Command("ip", "netns", "del", l.rx).Run()
	}
	defer removeNS()
	defer cleanupOnSignal(removeNS)()
	for _, c := range [][]string{
		{"ip", "netns", "add", l.gen}, {"ip", "netns", "add", l.rx},
		// Made inside the namespaces: nothing of the lab is ever in the host's.
		{"ip", "-n", l.gen, "link", "add", l.genIf, "type", "veth", "peer", "name", l.rxIf, "netns", l.rx},
		{"ip", "-n", l.gen, "addr", "add", "10.98.0.1/24", "dev", l.genIf},
		{"ip", "-n", l.rx, "addr", "add", "10.98.0.2/24", "dev", l.rxIf},
		{"ip", "-n", l.gen, "link", "set", l.genIf, "up"}, {"ip", "-n", l.rx, "link", "set", l.rxIf, "up"},
		// GRO gives the receiving veth a NAPI instance, so frames sent with
		// XDP_TX reach it even when no XDP program is attached there.
		{"ip", "netns", "exec", l.rx, "ethtool", "-K", l.rxIf, "gro", "on"},
		threadedNAPI(l.rx, l.rxIf),
	} {
		if err := sh(c...); err != nil {
			return err
		}
	}
	entries, err := readList(*list)
	if err != nil {
		return err
	}
	frame, genIdx, err := l.frame()
	if err != nil {
		return err
	}
	// Every contender loads its list once; the rounds only hook and unhook it.
	// No list is loaded when no frame can be generated.
	probe := probeLiveFrames(l.gen, genIdx)
	var cs []contender
	for _, c := range []struct {
		name string
		load func() (aclContender, error)
	}{
		{"sluice", func() (aclContender, error) { return l.sluice(entries) }},
		{"iptables_ipset", func() (aclContender, error) { return l.iptables(*list) }},
		{"nftables_set", func() (aclContender, error) { return l.nftables(entries) }},
	} {
		ac, err := aclContender{}, probe
		if err == nil {
			ac, err = c.load()
		}
		if err != nil {
			cs = append(cs, contender{name: c.name, run: func() (float64, error) { return 0, setupError{err} }})
			continue
		}
		defer ac.unload()
		cs = append(cs, contender{name: c.name, run: func() (float64, error) {
			if err := ac.hook(); err != nil {
				return 0, setupError{err}
			}
			defer ac.unhook()
			return l.measure(frame, genIdx, ac.count)
		}})
	}
	return bestOfRounds(cs)
}

// cleanupOnSignal runs cleanup and exits when the program is interrupted
// (make bench stopped with Ctrl-C), terminated, or its output is gone (a
// pipe to `head` closed, which would otherwise kill it outright), so that
// no namespace or HAProxy outlives it. The function it returns stops
// watching.
func cleanupOnSignal(cleanup func()) func() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		select {
		case <-sig:
			cleanup()
			os.Exit(1)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sig)
		close(done)
	}
}

// aclContender is an ACL with the list loaded: hook puts it in the
// receiver's path, unhook takes it out again, count reads its drops.
type aclContender struct {
	count          func() (uint64, error)
	hook           func() error
	unhook, unload func()
}

// contender is one way of handling the frames; run measures it once.
type contender struct {
	name string
	run  func() (float64, error)
}

// setupError is a contender that could not be set up: it is printed as
// not-measured, and the others go on.
type setupError struct{ err error }

func (e setupError) Error() string { return e.err.Error() }

// bestOfRounds measures the contenders in turn, one run each per round, for
// -runs rounds, so that a drift of the machine's speed (minutes long on a
// shared VM) reaches them all alike, and prints each one's best rate, as a
// shared machine's noise only ever lowers a rate.
func bestOfRounds(cs []contender) error {
	best := make([]float64, len(cs))
	failed := make([]bool, len(cs))
	for range *runs {
		for i, c := range cs {
			if failed[i] {
				continue
			}
			r, err := c.run()
			var se setupError
			switch {
			case errors.As(err, &se):
				fmt.Fprintf(os.Stderr, "vethbench: %s: %v\n", c.name, se.err)
				failed[i] = true
			case err != nil:
				return fmt.Errorf("%s: %w", c.name, err)
			}
			if err == nil {
				fmt.Fprintf(os.Stderr, "vethbench: %s %.0f\n", c.name, r)
			}
			best[i] = max(best[i], r)
		}
	}
	for i, c := range cs {
		if failed[i] {
			fmt.Printf("%s not-measured\n", c.name)
			continue
		}
		fmt.Printf("%s %.0f\n", c.name, best[i])
	}
	return nil
}

// undelivered counts the frames that reached the receiver's IPv4 layer and
// were not delivered (the snmp counters InReceives, counted before the
// prerouting hook, less InDelivers): a netfilter contender's drops. Frames
// its rule let through would be delivered (to UDP, which answers "port
// unreachable") and not counted.
func (l lab) undelivered() (uint64, error) {
	out, err := exec.Command("ip", "netns", "exec", l.rx, "cat", "/proc/net/snmp").Output()
	if err != nil {
		return 0, err
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		fs := strings.Fields(line)
		if len(fs) == 0 || fs[0] != "Ip:" {
			continue
		}
		if names == nil {
			names = fs
			continue
		}
		v := map[string]uint64{}
		for i := 1; i < len(fs) && i < len(names); i++ {
			v[names[i]], _ = strconv.ParseUint(fs[i], 10, 64)
		}
		return v["InReceives"] - v["InDelivers"], nil
	}
	return 0, errors.New("no Ip counters in /proc/net/snmp")
}

func readList(path string) ([]netip.Prefix, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := []netip.Prefix{netip.MustParsePrefix("10.98.0.1/32")}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		s := sc.Text()
		if !strings.Contains(s, "/") {
			s += "/32"
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, sc.Err()
}

// frame builds a UDP frame from 10.98.0.1 to the receiver's MAC and address.
func (l lab) frame() ([]byte, int, error) {
	var rxMAC, genMAC net.HardwareAddr
	var genIdx int
	if err := testlab.InNS(l.rx, func() error {
		i, err := net.InterfaceByName(l.rxIf)
		if err == nil {
			rxMAC = i.HardwareAddr
		}
		return err
	}); err != nil {
		return nil, 0, err
	}
	if err := testlab.InNS(l.gen, func() error {
		i, err := net.InterfaceByName(l.genIf)
		if err == nil {
			genMAC, genIdx = i.HardwareAddr, i.Index
		}
		return err
	}); err != nil {
		return nil, 0, err
	}
	f := make([]byte, 60)
	copy(f[0:6], rxMAC)
	copy(f[6:12], genMAC)
	f[12], f[13] = 0x08, 0x00
	ip := f[14:34]
	ip[0], ip[3], ip[8], ip[9] = 0x45, 46, 64, 17
	copy(ip[12:16], []byte{10, 98, 0, 1})
	copy(ip[16:20], []byte{10, 98, 0, 2})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	ip[10], ip[11] = byte(^sum>>8), byte(^sum)
	udp := f[34:]
	udp[0], udp[1], udp[2], udp[3], udp[5] = 0x9c, 0x40, 0, 9, 26
	return f, genIdx, nil
}

// errNothingCounted is returned when the receiver counted no frame, dropped
// or arrived.
var errNothingCounted = errors.New("the receiver counted nothing")

type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// measure sends *packets frames and returns the receiver's drops per second.
func (l lab) measure(frame []byte, genIdx int, count func() (uint64, error)) (float64, error) {
	var gen bench.GenObjects
	if err := bench.LoadGenObjects(&gen, nil); err != nil {
		return 0, err
	}
	defer gen.Close()
	return l.measureWith(gen.XdpTxAll, frame, genIdx, count)
}

// threadedNAPI is the command that moves the receive processing of ifname
// (in namespace ns) into a NAPI kernel thread, which measureWith pins to a
// CPU of its own.
func threadedNAPI(ns, ifname string) []string {
	return []string{"ip", "netns", "exec", ns, "sh", "-c", "echo 1 > /sys/class/net/" + ifname + "/threaded"}
}

// pinNAPI pins the NAPI threads of ifname to cpu.
func pinNAPI(ifname string, cpu int) error {
	out, _ := exec.Command("pgrep", "^napi/"+ifname+"-").Output()
	pids := strings.Fields(string(out))
	if len(pids) == 0 {
		return fmt.Errorf("no NAPI thread for %s", ifname)
	}
	for _, pid := range pids {
		if err := sh("taskset", "-pc", strconv.Itoa(cpu), pid); err != nil {
			return err
		}
	}
	return nil
}

// measureWith runs the generator gen over *packets frames in l.gen and
// returns how many per second count saw (drops, or arrivals).
//
// The generator runs on the last CPU and the receiver's processing (the
// NAPI thread of l.rxIf: XDP, or the kernel's stack with iptables,
// nftables or forwarding) on the one before, the same for every
// contender, like a NIC's receive queue on its own core fed by a traffic
// generator on another machine: a contender cheaper than the generator
// keeps up with it, a dearer one saturates its core.
func (l lab) measureWith(gen *ebpf.Program, frame []byte, genIdx int, count func() (uint64, error)) (float64, error) {
	if runtime.NumCPU() < 2 {
		return 0, errors.New("needs two CPUs: one generates, one receives")
	}
	if err := pinNAPI(l.rxIf, runtime.NumCPU()-2); err != nil {
		return 0, err
	}
	before, err := count()
	if err != nil {
		return 0, err
	}
	elapsed, err := generate(l.gen, gen, frame, genIdx, uint32(*packets))
	if err != nil {
		return 0, err
	}
	time.Sleep(100 * time.Millisecond)
	after, err := count()
	if err != nil {
		return 0, err
	}
	if after == before {
		return 0, errNothingCounted
	}
	return float64(after-before) / elapsed.Seconds(), nil
}

// generate runs the live-frames generator gen over frames frames in
// namespace ns, on the last CPU, and returns how long it ran.
func generate(ns string, gen *ebpf.Program, frame []byte, ifindex int, frames uint32) (time.Duration, error) {
	var elapsed time.Duration
	err := onGeneratorCPU(ns, func() error {
		start := time.Now()
		_, err := gen.Run(&ebpf.RunOptions{Data: frame, Repeat: frames, Flags: bpfFTestXDPLiveFrames, BatchSize: 64,
			Context: xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)}})
		elapsed = time.Since(start)
		return err
	})
	if err != nil {
		return 0, liveFramesError(err)
	}
	return elapsed, nil
}

// onGeneratorCPU runs fn in namespace ns on the last CPU, the generator's.
func onGeneratorCPU(ns string, fn func() error) error {
	return testlab.InNS(ns, func() error {
		var orig, one unix.CPUSet
		if err := unix.SchedGetaffinity(0, &orig); err != nil {
			return err
		}
		one.Set(runtime.NumCPU() - 1)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			return err
		}
		defer unix.SchedSetaffinity(0, &orig)
		return fn()
	})
}

// packetSocket opens a packet socket that sends out of ifname (in the
// caller's namespace) and receives nothing.
func packetSocket(ifname string) (int, *net.Interface, error) {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return -1, nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // protocol 0: receives nothing
	if err != nil {
		return -1, nil, fmt.Errorf("packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index}); err != nil {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("packet socket on %s: %w", ifname, err)
	}
	return fd, ifc, nil
}

// sendFrame sends f on packet socket fd: whether it went, and an error
// unless the socket was only full for now (ENOBUFS, EAGAIN) or interrupted.
func sendFrame(fd int, f []byte) (bool, error) {
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&f[0])), uintptr(len(f)), 0, 0, 0)
	switch e {
	case 0:
		return true, nil
	case unix.ENOBUFS, unix.EAGAIN, unix.EINTR:
		return false, nil
	}
	return false, fmt.Errorf("send a frame: %w", e)
}

// liveFramesError is err from a live-frames run, a setupError when the
// kernel refuses the mode itself (EPERM where a machine forbids injecting
// frames, EINVAL or ENOTSUPP before Linux 5.18): then nothing can be
// measured, and every contender is printed as not-measured instead of the
// run ending, so the benchmarks that need no generator still report.
func liveFramesError(err error) error {
	err = fmt.Errorf("live frames (BPF_F_TEST_XDP_LIVE_FRAMES): %w", err)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, ebpf.ErrNotSupported) {
		return setupError{fmt.Errorf("this kernel refuses to generate frames: %w", err)}
	}
	return err
}

// probeLiveFrames runs the bare XDP_DROP program once in live-frames mode
// on ifindex in namespace ns: nil when the generator can run there, else
// generate's error, before any contender loads a million-entry list.
func probeLiveFrames(ns string, ifindex int) error {
	var drop bench.DropObjects
	if err := bench.LoadDropObjects(&drop, nil); err != nil {
		return err
	}
	defer drop.Close()
	_, err := generate(ns, drop.XdpDropAll, make([]byte, 60), ifindex, 1)
	return err
}

func (l lab) sluice(entries []netip.Prefix) (aclContender, error) {
	spec, err := bpf.LoadXDP()
	if err != nil {
		return aclContender{}, err
	}
	for _, name := range []string{bpf.XDPMapAclV4, bpf.XDPMapAclV4Host} {
		spec.Maps[name].MaxEntries = 1 << 21
	}
	var objs bpf.XDPObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return aclContender{}, err
	}
	acl, err := maps.NewACLFromObjects(&objs)
	if err != nil {
		objs.Close()
		return aclContender{}, err
	}
	if _, err := acl.Replace(0, entries); err != nil {
		objs.Close()
		return aclContender{}, err
	}
	if err := maps.NewPolicyMap(objs.AclConfig).SetPolicy(maps.Policy{DenyLists: 1}); err != nil {
		objs.Close()
		return aclContender{}, err
	}
	var lk link.Link
	idx, err := ifindexOf(l.rx, l.rxIf)
	if err != nil {
		objs.Close()
		return aclContender{}, err
	}
	stats := maps.NewStats(objs.StatsIface, objs.StatsDrop, objs.StatsList)
	return aclContender{
		count: func() (uint64, error) {
			c, err := stats.Iface(idx)
			return c[maps.VerdictDrop].Packets, err
		},
		hook: func() (err error) {
			return testlab.InNS(l.rx, func() error {
				lk, err = link.AttachXDP(link.XDPOptions{Program: objs.SluiceXdp, Interface: idx, Flags: link.XDPDriverMode})
				return err
			})
		},
		unhook: func() { lk.Close() },
		unload: func() { objs.Close() },
	}, nil
}

func (l lab) iptables(listPath string) (aclContender, error) {
	tmp, err := os.CreateTemp("", "vethbench-ipset-")
	if err != nil {
		return aclContender{}, err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	fmt.Fprintln(w, "create vb hash:net family inet hashsize 1048576 maxelem 4000000")
	fmt.Fprintln(w, "add vb 10.98.0.1")
	f, err := os.Open(listPath)
	if err != nil {
		return aclContender{}, err
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fmt.Fprintln(w, "add vb "+sc.Text())
	}
	f.Close()
	w.Flush()
	tmp.Close()
	in, _ := os.Open(tmp.Name())
	defer in.Close()
	cmd := exec.Command("ip", "netns", "exec", l.rx, "ipset", "restore")
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		return aclContender{}, fmt.Errorf("ipset restore: %v: %s", err, out)
	}
	return aclContender{
		count: func() (uint64, error) {
			out, err := exec.Command("ip", "netns", "exec", l.rx, "iptables", "-t", "raw", "-L", "PREROUTING", "-v", "-x", "-n").Output()
			if err != nil {
				return 0, err
			}
			for _, line := range strings.Split(string(out), "\n") {
				if fs := strings.Fields(line); len(fs) > 2 && fs[2] == "DROP" {
					return strconv.ParseUint(fs[0], 10, 64)
				}
			}
			return 0, errors.New("no DROP rule counter")
		},
		hook: func() error {
			return sh("ip", "netns", "exec", l.rx, "iptables", "-t", "raw", "-A", "PREROUTING", "-m", "set", "--match-set", "vb", "src", "-j", "DROP")
		},
		unhook: func() { _ = sh("ip", "netns", "exec", l.rx, "iptables", "-t", "raw", "-F", "PREROUTING") },
		unload: func() { _ = sh("ip", "netns", "exec", l.rx, "ipset", "destroy", "vb") },
	}, nil
}

func (l lab) nftables(entries []netip.Prefix) (aclContender, error) {
	dir, err := os.MkdirTemp("", "vethbench-nft-")
	if err != nil {
		return aclContender{}, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "rules.nft")
	f, err := os.Create(path)
	if err != nil {
		return aclContender{}, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "table ip vb {\n set deny { type ipv4_addr; flags interval; auto-merge; elements = {")
	for i, p := range entries {
		if i > 0 {
			w.WriteString(",\n")
		}
		w.WriteString(p.String())
	}
	fmt.Fprintln(w, "\n} }\n}")
	w.Flush()
	f.Close()
	if err := sh("ip", "netns", "exec", l.rx, "nft", "-f", path); err != nil {
		return aclContender{}, err
	}
	// The hooked chain exists only while hooked: an empty one would still
	// cost the other contenders a hook. Its rule has no counter: nft reads
	// a table's whole set to list anything in it, 1.5 minutes of kernel
	// time for this one, so the drops are counted by undelivered.
	return aclContender{
		count: l.undelivered,
		hook: func() error {
			return sh("ip", "netns", "exec", l.rx, "nft", "add chain ip vb pre { type filter hook prerouting priority raw; }; add rule ip vb pre ip saddr @deny drop")
		},
		unhook: func() { _ = sh("ip", "netns", "exec", l.rx, "nft", "delete", "chain", "ip", "vb", "pre") },
		unload: func() { _ = sh("ip", "netns", "exec", l.rx, "nft", "delete", "table", "ip", "vb") },
	}, nil
}
