package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// The L4 lab: a client, the load balancer and backends on one L2 segment
// (a bridge in a switch namespace), the load balancer one-armed like Katran:
// packets for a VIP come in and leave, encapsulated or re-addressed, on the
// same interface, and backends answer the client directly (DSR).
const (
	L4ClientAddr = "10.98.0.2"
	L4LBAddr     = "10.98.0.1"
	L4VIP        = "10.98.100.10"
	L4EncapSrc   = "10.98.200.0/24"
	L4HTTPPort   = "80"
	L4EchoPort   = "7007"
	L4UDPPort    = "7008"
)

// L4BackendAddr is the address of backend i (0-based).
func L4BackendAddr(i int) string { return fmt.Sprintf("10.98.0.%d", 11+i) }

// L4Lab is a Lab whose Backend namespace is unused and whose Backends are many.
type L4Lab struct {
	*Lab
	Switch   string
	Backends []string // namespace of each backend
	BackIfs  []string // each backend's interface
}

// NewL4 builds the one-armed topology with n backends. Each backend holds
// the VIP on its loopback and serves HTTP (answering with its name, b0, b1,
// …), a TCP echo and a UDP echo on the VIP; decap is left to the test.
func NewL4(t testing.TB, n int) *L4Lab {
	t.Helper()
	c := counter.Add(1)
	id := fmt.Sprintf("%d%d", os.Getpid()%10000, c)
	l := &L4Lab{Lab: &Lab{t: t, Client: "sl4-" + id + "-client", LB: "sl4-" + id + "-lb", Dir: t.TempDir()},
		Switch: "sl4-" + id + "-sw"}
	l.BPFFS = "/sys/fs/bpf/sluice-test-" + id
	l.Socket = l.Dir + "/sluice.sock"
	l.State = l.Dir + "/state"
	l.ClientIf, l.LBIf = "q"+id+"c", "q"+id+"l"
	t.Cleanup(l.teardown)
	l.namespaces = []string{l.Client, l.LB, l.Switch}
	for i := range n {
		l.Backends = append(l.Backends, fmt.Sprintf("sl4-%s-b%d", id, i))
		l.BackIfs = append(l.BackIfs, fmt.Sprintf("q%sb%d", id, i))
	}
	l.namespaces = append(l.namespaces, l.Backends...)
	for _, ns := range l.namespaces {
		l.ip("netns", "add", ns)
	}
	l.nsIP(l.Switch, "link", "add", "br0", "type", "bridge")
	l.nsIP(l.Switch, "link", "set", "br0", "up")
	plug := func(ns, ifname, addr string) {
		peer := ifname + "s"
		l.ip("link", "add", ifname, "type", "veth", "peer", "name", peer)
		l.ip("link", "set", ifname, "netns", ns)
		l.ip("link", "set", peer, "netns", l.Switch)
		l.nsIP(l.Switch, "link", "set", peer, "master", "br0")
		l.nsIP(l.Switch, "link", "set", peer, "up")
		// Frames the load balancer sends back out with XDP_TX must be
		// received on the switch side.
		l.attachXDPPass(l.Switch, peer)
		l.nsIP(ns, "link", "set", "lo", "up")
		l.nsIP(ns, "addr", "add", addr+"/24", "dev", ifname)
		l.nsIP(ns, "link", "set", ifname, "up")
	}
	plug(l.Client, l.ClientIf, L4ClientAddr)
	// A veth hands the stack's packets over with the TCP/UDP checksum left
	// for "hardware" to finish; a frame that XDP sends back out never gets it
	// finished. A real client's NIC completes it, so the client does it in
	// software here.
	l.Exec(l.Client, "ethtool", "-K", l.ClientIf, "tx", "off")
	plug(l.LB, l.LBIf, L4LBAddr)
	l.nsIP(l.Client, "route", "add", L4VIP+"/32", "via", L4LBAddr)
	b := Build(t)
	for i, ns := range l.Backends {
		plug(ns, l.BackIfs[i], L4BackendAddr(i))
		l.nsIP(ns, "addr", "add", L4VIP+"/32", "dev", "lo")
		l.Start(ns, b.Tool, "serve", "-name", fmt.Sprintf("b%d", i), "-tcp", ":"+L4EchoPort,
			"-udp", L4VIP+":"+L4UDPPort, "-http", ":"+L4HTTPPort)
	}
	return l
}

// Decap runs `sluice decap` on every backend: with --vip L4VIP, but on
// the last backend without, which strips tunnels to its local addresses.
func (l *L4Lab) Decap() {
	l.t.Helper()
	b := Build(l.t)
	for i, ns := range l.Backends {
		pin := l.decapPin(i)
		l.t.Cleanup(func() { _ = os.RemoveAll(pin) })
		args := []string{b.Sluice, "decap", "--iface", l.BackIfs[i], "--bpffs", pin}
		if i < len(l.Backends)-1 {
			args = append(args, "--vip", L4VIP)
		}
		if out, err := nsenter(ns, args...); err != nil {
			l.t.Fatalf("decap on %s: %v\n%s", ns, err, out)
		}
	}
}

func (l *L4Lab) decapPin(i int) string { return l.BPFFS + "-decap-" + fmt.Sprint(i) }

// DecapShow is `sluice decap --show -o json` on backend i.
func (l *L4Lab) DecapShow(i int) string {
	l.t.Helper()
	out, err := nsenter(l.Backends[i], Build(l.t).Sluice, "decap", "--show", "-o", "json", "--bpffs", l.decapPin(i))
	if err != nil {
		l.t.Fatalf("decap --show on %s: %v\n%s", l.Backends[i], err, out)
	}
	return out
}

// nsenter runs a command in a network namespace only, so what it pins
// lives in the host's bpffs.
func nsenter(ns string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + ns}, args...)...).CombinedOutput()
	return string(out), err
}

// StartL4Daemon runs the daemon on the load balancer's one interface.
func (l *L4Lab) StartL4Daemon(extra ...string) *Daemon {
	return l.StartDaemon(append([]string{"--encap-src4", L4EncapSrc}, extra...)...)
}

// Dial opens a TCP connection from the client namespace. The socket belongs
// to the namespace it was made in, so the caller may use it from anywhere.
func (l *L4Lab) Dial(addr string) (net.Conn, error) {
	return DialFrom(l.Client, addr, 2*time.Second)
}

// DialUDP opens a connected UDP socket from the client namespace.
func (l *L4Lab) DialUDP(addr string) (net.Conn, error) {
	var c net.Conn
	err := InNS(l.Client, func() error {
		var err error
		c, err = net.Dial("udp", addr)
		return err
	})
	return c, err
}

// InNS runs fn on a thread inside the named network namespace; sockets fn
// opens stay in it. A thread that cannot be moved back stays locked, and
// ends with the goroutine, so it never runs anything else in the wrong
// namespace.
func InNS(name string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	err = fn()
	if serr := netns.Set(orig); serr != nil {
		return fmt.Errorf("back from namespace %s: %w", name, serr)
	}
	runtime.UnlockOSThread()
	return err
}

// HTTPConn is a keep-alive HTTP/1.1 connection that asks a backend its name.
type HTTPConn struct {
	net.Conn
	buf []byte
}

// Ask sends one request on the connection and returns the backend's name.
func (h *HTTPConn) Ask() (string, error) {
	_ = h.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := h.Write([]byte("GET / HTTP/1.1\r\nHost: vip\r\n\r\n")); err != nil {
		return "", err
	}
	// The answer is small: read until its body ("hello from NAME\n") arrives.
	h.buf = h.buf[:0]
	tmp := make([]byte, 4096)
	for !strings.Contains(string(h.buf), "\n\r\n") || !strings.HasSuffix(string(h.buf), "\n") || !strings.Contains(string(h.buf), "hello from ") {
		n, err := h.Read(tmp)
		if err != nil {
			return "", err
		}
		h.buf = append(h.buf, tmp[:n]...)
	}
	s := string(h.buf)
	name := s[strings.Index(s, "hello from ")+len("hello from "):]
	return strings.TrimSpace(name), nil
}

// OpenHTTP dials the VIP's HTTP port from the client.
func (l *L4Lab) OpenHTTP(port string) (*HTTPConn, error) {
	c, err := l.Dial(net.JoinHostPort(L4VIP, port))
	if err != nil {
		return nil, err
	}
	return &HTTPConn{Conn: c}, nil
}
