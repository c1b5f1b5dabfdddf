// Package lab builds throwaway hosts for end-to-end tests: network namespaces
// joined by veth pairs, the real sluice daemon in one of them, and traffic
// helpers. Everything it makes is uniquely named and removed in t.Cleanup,
// also when the test fails.
package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Addresses of the lab. The client has a second address so that a test can
// deny one source and keep the other.
const (
	ClientAddr   = "10.99.1.2"
	ClientAddr2  = "10.99.1.3"
	LBClientAddr = "10.99.1.1"
	LBBackAddr   = "10.99.2.1"
	BackendAddr  = "10.99.2.2"
	ClientAddr6  = "fd99:1::2"
	LBAddr6      = "fd99:1::1"
	LBBackAddr6  = "fd99:2::1"
	BackendAddr6 = "fd99:2::2"
)

// Ports the backend's sltool serves.
const (
	TCPPort  = "7007"
	UDPPort  = "7008"
	HTTPPort = "8080"
)

var counter atomic.Int32

// Lab is one client — load balancer — backend topology. XDP is attached on
// LBIf, the load balancer's interface towards the client.
type Lab struct {
	t                         testing.TB
	Client, LB, Backend       string // namespace names
	ClientIf, LBIf            string
	LBBackIf, BackendIf       string
	Dir, BPFFS, Socket, State string

	namespaces []string // every namespace the lab made, removed by teardown
}

// Binaries are the programs a lab runs, built once per test binary.
type Binaries struct {
	Sluice, Tool string
}

var (
	buildOnce sync.Once
	bins      Binaries
	buildErr  error
)

// Build builds bin/sluice and sltool (or takes SLUICE_BIN) once.
func Build(t testing.TB) Binaries {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		root := repoRoot()
		bins.Sluice = os.Getenv("SLUICE_BIN")
		if bins.Sluice == "" {
			bins.Sluice = filepath.Join(dir, "sluice")
			cmd := exec.Command("go", "build", "-o", bins.Sluice, "./cmd/sluice")
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build sluice: %v\n%s", err, out)
				return
			}
		}
		bins.Tool = filepath.Join(dir, "sltool")
		cmd := exec.Command("go", "build", "-o", bins.Tool, "./test/lab/sltool")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build sltool: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bins
}

func repoRoot() string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "."
	}
	return strings.TrimSpace(string(out))
}

// New builds the three namespaces and their links and schedules their removal.
func New(t testing.TB) *Lab {
	t.Helper()
	n := counter.Add(1)
	id := fmt.Sprintf("%d%d", os.Getpid()%10000, n)
	l := &Lab{
		t:        t,
		Client:   "sl-" + id + "-client",
		LB:       "sl-" + id + "-lb",
		Backend:  "sl-" + id + "-backend",
		ClientIf: "s" + id + "c", LBIf: "s" + id + "l",
		LBBackIf: "s" + id + "m", BackendIf: "s" + id + "b",
		Dir: t.TempDir(),
	}
	l.BPFFS = "/sys/fs/bpf/sluice-test-" + id
	l.Socket = filepath.Join(l.Dir, "sluice.sock")
	l.State = filepath.Join(l.Dir, "state")
	t.Cleanup(l.teardown)
	l.namespaces = []string{l.Client, l.LB, l.Backend}
	steps := [][]string{
		{"netns", "add", l.Client}, {"netns", "add", l.LB}, {"netns", "add", l.Backend},
		{"link", "add", l.ClientIf, "type", "veth", "peer", "name", l.LBIf},
		{"link", "add", l.LBBackIf, "type", "veth", "peer", "name", l.BackendIf},
		{"link", "set", l.ClientIf, "netns", l.Client}, {"link", "set", l.LBIf, "netns", l.LB},
		{"link", "set", l.LBBackIf, "netns", l.LB}, {"link", "set", l.BackendIf, "netns", l.Backend},
	}
	for _, s := range steps {
		l.ip(s...)
	}
	l.nsIP(l.Client, "addr", "add", ClientAddr+"/24", "dev", l.ClientIf)
	l.nsIP(l.Client, "addr", "add", ClientAddr2+"/24", "dev", l.ClientIf)
	l.nsIP(l.Client, "addr", "add", ClientAddr6+"/64", "dev", l.ClientIf, "nodad")
	l.nsIP(l.LB, "addr", "add", LBClientAddr+"/24", "dev", l.LBIf)
	l.nsIP(l.LB, "addr", "add", LBAddr6+"/64", "dev", l.LBIf, "nodad")
	l.nsIP(l.LB, "addr", "add", LBBackAddr+"/24", "dev", l.LBBackIf)
	l.nsIP(l.LB, "addr", "add", LBBackAddr6+"/64", "dev", l.LBBackIf, "nodad")
	l.nsIP(l.Backend, "addr", "add", BackendAddr+"/24", "dev", l.BackendIf)
	l.nsIP(l.Backend, "addr", "add", BackendAddr6+"/64", "dev", l.BackendIf, "nodad")
	for ns, ifs := range map[string][]string{l.Client: {l.ClientIf}, l.LB: {l.LBIf, l.LBBackIf}, l.Backend: {l.BackendIf}} {
		l.nsIP(ns, "link", "set", "lo", "up")
		for _, i := range ifs {
			l.nsIP(ns, "link", "set", i, "up")
		}
	}
	l.nsIP(l.Client, "route", "add", "default", "via", LBClientAddr)
	l.nsIP(l.Client, "-6", "route", "add", "default", "via", LBAddr6)
	l.nsIP(l.Backend, "route", "add", "default", "via", LBBackAddr)
	l.nsIP(l.Backend, "-6", "route", "add", "default", "via", LBBackAddr6)
	l.Exec(l.LB, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	return l
}

func (l *Lab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (l *Lab) nsIP(ns string, args ...string) {
	l.t.Helper()
	l.ip(append([]string{"-n", ns}, args...)...)
}

// Exec runs a command in a namespace and fails the test if it fails.
func (l *Lab) Exec(ns string, args ...string) string {
	l.t.Helper()
	out, err := l.Run(ns, 30*time.Second, args...)
	if err != nil {
		l.t.Fatalf("%s: %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return out
}

// Run runs a command in a namespace with a time limit and returns its output.
func (l *Lab) Run(ns string, limit time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

// Start starts a long-running command in a namespace, stopped in t.Cleanup,
// and waits until it prints a line.
func (l *Lab) Start(ns string, args ...string) *exec.Cmd {
	l.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		if bufio.NewScanner(stdout).Scan() {
			close(ready)
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		l.t.Fatalf("%s did not become ready", strings.Join(args, " "))
	}
	return cmd
}

// StartBackend runs the echo and HTTP servers in the backend namespace.
func (l *Lab) StartBackend() {
	l.t.Helper()
	b := Build(l.t)
	l.Start(l.Backend, b.Tool, "serve", "-name", "backend",
		"-tcp", ":"+TCPPort, "-udp", ":"+UDPPort, "-http", ":"+HTTPPort)
}

// Reaches reports whether a probe from src (an address of the client) to
// the backend gets a reply: proto is tcp, udp, http or icmp.
func (l *Lab) Reaches(proto, src, dst string) bool {
	l.t.Helper()
	b := Build(l.t)
	var args []string
	switch proto {
	case "icmp":
		args = []string{"ping", "-c", "1", "-W", "1", "-I", src, dst}
	case "tcp":
		args = []string{b.Tool, "probe", "tcp", net.JoinHostPort(dst, TCPPort), "-src", src, "-timeout", "1s"}
	case "udp":
		args = []string{b.Tool, "probe", "udp", net.JoinHostPort(dst, UDPPort), "-src", src, "-timeout", "1s"}
	case "http":
		args = []string{b.Tool, "probe", "http", net.JoinHostPort(dst, HTTPPort), "-src", src, "-timeout", "1s"}
	default:
		l.t.Fatalf("unknown probe %q", proto)
	}
	_, err := l.Run(l.Client, 5*time.Second, args...)
	return err == nil
}

// Eventually polls cond every 50 ms until it holds or limit passes.
func Eventually(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *Lab) teardown() {
	if bins.Sluice != "" {
		_ = exec.Command(bins.Sluice, "detach", "--all", "--bpffs", l.BPFFS).Run()
	}
	_ = os.RemoveAll(l.BPFFS)
	for _, ns := range l.namespaces {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
}

// Daemon is a running `sluice serve`.
type Daemon struct {
	cmd  *exec.Cmd
	log  SyncBuffer
	done chan struct{}
}

// StartDaemon runs sluice serve in the load balancer's network namespace,
// attached to LBIf, and waits for its API. It enters only the network
// namespace (nsenter), so its pins live in the host's bpffs and outlive it,
// as they do on a real host.
func (l *Lab) StartDaemon(extra ...string) *Daemon {
	l.t.Helper()
	b := Build(l.t)
	_ = os.Remove(l.Socket)
	args := append([]string{"--net=/run/netns/" + l.LB, b.Sluice, "serve", "--iface", l.LBIf,
		"--bpffs", l.BPFFS, "--state-dir", l.State, "--socket", l.Socket}, extra...)
	d := &Daemon{cmd: exec.Command("nsenter", args...), done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = &d.log, &d.log
	if err := d.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	l.t.Cleanup(func() {
		d.Kill()
		if l.t.Failed() {
			l.t.Logf("daemon log:\n%s", d.Log())
		}
	})
	ok := Eventually(20*time.Second, func() bool {
		select {
		case <-d.done:
			return true
		default:
		}
		_, err := l.CLI("status")
		return err == nil
	})
	select {
	case <-d.done:
		l.t.Fatalf("daemon exited at start:\n%s", d.Log())
	default:
	}
	if !ok {
		l.t.Fatalf("daemon API did not come up:\n%s", d.Log())
	}
	return d
}

// Log returns what the daemon printed.
func (d *Daemon) Log() string { return d.log.String() }

// Kill sends SIGKILL and waits for the exit.
func (d *Daemon) Kill() {
	_ = d.cmd.Process.Kill()
	<-d.done
}

// Signal sends sig to the daemon (nsenter execs it, so the process is the daemon).
func (d *Daemon) Signal(sig os.Signal) error { return d.cmd.Process.Signal(sig) }

// DaemonPID is the process that serves the API now, as `sluice status`
// reports it.
func (l *Lab) DaemonPID() int {
	l.t.Helper()
	var st struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(l.MustCLI("status", "-o", "json")), &st); err != nil || st.PID == 0 {
		l.t.Fatalf("status has no pid: %v", err)
	}
	return st.PID
}

// UpgradeDaemon sends SIGUSR2 to the daemon serving the API and waits,
// bounded, until its successor serves it; it returns the successor's PID,
// which the lab's cleanup kills (the successor is not the lab's child).
func (l *Lab) UpgradeDaemon() int {
	l.t.Helper()
	old := l.DaemonPID()
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		l.t.Fatal(err)
	}
	var pid int
	Eventually(60*time.Second, func() bool {
		out, err := l.CLI("status", "-o", "json")
		if err != nil {
			return false // the API pauses while the successor starts
		}
		var st struct {
			PID int `json:"pid"`
		}
		if json.Unmarshal([]byte(out), &st) == nil && st.PID != old {
			pid = st.PID
		}
		return pid != 0
	})
	if pid == 0 {
		l.t.Fatalf("no successor serves the API a minute after SIGUSR2 to %d", old)
	}
	l.t.Cleanup(func() { KillAndReap(pid) })
	return pid
}

// Alive reports whether a process exists (and is not a zombie).
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// KillAndReap sends SIGKILL to pid and waits, bounded, until it is gone.
func KillAndReap(pid int) {
	_ = syscall.Kill(pid, syscall.SIGKILL)
	Eventually(10*time.Second, func() bool { return !Alive(pid) })
}

// Stop sends SIGTERM and waits for the exit, bounded.
func (d *Daemon) Stop() {
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.Kill()
	}
}

// CLI runs bin/sluice against the lab daemon's socket.
func (l *Lab) CLI(args ...string) (string, error) {
	b := Build(l.t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.Sluice, append([]string{"--api", "unix://" + l.Socket}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("sluice %s: %v: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// MustCLI is CLI that fails the test on error.
func (l *Lab) MustCLI(args ...string) string {
	l.t.Helper()
	out, err := l.CLI(args...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}
