package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicelb/sluice/l4"
	"github.com/sluicelb/sluice/mgmt/client"
	"github.com/sluicelb/sluice/test/lab"
)

// answered is one connection of spreadFlows: the client's end of it and
// the backend that answered it ("": the connection failed).
type answered struct {
	src     netip.AddrPort
	backend string
}

// spreadFlows opens n fresh connections to the VIP's port, one request
// each; three failures end the test.
func spreadFlows(t *testing.T, l *lab.L4Lab, port string, n int) []answered {
	t.Helper()
	out := make([]answered, 0, n)
	failed := 0
	for range n {
		var a answered
		if c, err := l.OpenHTTP(port); err == nil {
			a.src = c.LocalAddr().(*net.TCPAddr).AddrPort()
			a.backend, _ = c.Ask()
			c.Close()
		}
		if a.backend == "" {
			failed++
		}
		out = append(out, a)
		if failed >= 3 {
			t.Fatalf("connections to the VIP fail: %v", countBackends(out))
		}
	}
	return out
}

// spread opens n fresh connections to the VIP's port and counts the
// backends that answered; a connection that failed is counted under "".
func spread(t *testing.T, l *lab.L4Lab, port string, n int) map[string]int {
	t.Helper()
	return countBackends(spreadFlows(t, l, port, n))
}

func countBackends(as []answered) map[string]int {
	got := map[string]int{}
	for _, a := range as {
		got[a.backend]++
	}
	return got
}

// holdConns opens n keep-alive connections and returns them by backend.
func holdConns(t *testing.T, l *lab.L4Lab, n int) map[string][]*lab.HTTPConn {
	t.Helper()
	out := map[string][]*lab.HTTPConn{}
	for range n {
		c, err := l.OpenHTTP(lab.L4HTTPPort)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		name, err := c.Ask()
		if err != nil {
			t.Fatalf("first request: %v", err)
		}
		out[name] = append(out[name], c)
	}
	return out
}

// stillServed asks every held connection again: each must answer, from the
// backend it started on.
func stillServed(t *testing.T, held map[string][]*lab.HTTPConn, when string) {
	t.Helper()
	for name, cs := range held {
		for i, c := range cs {
			got, err := c.Ask()
			if err != nil || got != name {
				t.Errorf("%s: connection %d of %s: got %q, %v", when, i, name, got, err)
			}
		}
	}
}

// scrape reads the daemon's /metrics through its socket.
func scrape(t *testing.T, l *lab.Lab) string {
	t.Helper()
	out, err := l.Run(l.LB, 10*time.Second, "curl", "-sf", "--unix-socket", l.Socket, "http://sluice/metrics")
	if err != nil {
		t.Fatalf("scrape /metrics: %v\n%s", err, out)
	}
	return out
}

// metricValue is the value of the sample named exactly series, or -1.
func metricValue(metrics, series string) float64 {
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return f
			}
		}
	}
	return -1
}

// udpFlows sends "whoami" twice from each of n UDP sockets (n flows) to the
// VIP's UDP port and returns which backend answered each; a flow whose two
// answers differ, or that got none, fails the test.
func udpFlows(t *testing.T, l *lab.L4Lab, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := range n {
		c, err := l.DialUDP(net.JoinHostPort(lab.L4VIP, lab.L4UDPPort))
		if err != nil {
			t.Fatal(err)
		}
		var answers []string
		for range 2 {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 64)
			_, err := c.Write([]byte("whoami"))
			k := 0
			if err == nil {
				k, err = c.Read(buf)
			}
			if err != nil {
				c.Close()
				t.Fatalf("udp flow %d: %v", i, err)
			}
			answers = append(answers, string(buf[:k]))
		}
		c.Close()
		if answers[0] != answers[1] {
			t.Errorf("udp flow %d moved from %s to %s", i, answers[0], answers[1])
		}
		got[answers[0]]++
	}
	return got
}

func svcSet(t *testing.T, l *lab.L4Lab, name, port, mode string, backends ...string) {
	t.Helper()
	args := []string{"svc", "set", name, "--vip", lab.L4VIP, "--port", port, "--mode", mode, "--table-size", "4099"}
	for _, b := range backends {
		args = append(args, "--backend", b)
	}
	l.MustCLI(args...)
}

// weightedSpread sets service web in mode over the lab's three backends,
// weighted 1:2:1, and checks that 300 connections spread so: each share
// within 10 points, and each connection answered by the backend that the
// Maglev table built in Go (l4.BuildTable, l4.FlowHash) gives its flow, as
// a second load balancer given the same service would send it. It returns
// how many each backend answered.
func weightedSpread(t *testing.T, l *lab.L4Lab, d *lab.Daemon, mode string) map[string]int {
	t.Helper()
	b0, b1, b2 := lab.L4BackendAddr(0), lab.L4BackendAddr(1), lab.L4BackendAddr(2)
	svcSet(t, l, "web", lab.L4HTTPPort, mode, b0+",weight=100", b1+",weight=200", b2+",weight=100")
	flows := spreadFlows(t, l, lab.L4HTTPPort, 300)
	got := countBackends(flows)
	if got[""] > 0 {
		t.Fatalf("%s: %d of 300 connections failed: %v\n%s", mode, got[""], got, d.Log())
	}
	for name, want := range map[string]float64{"b0": 0.25, "b1": 0.5, "b2": 0.25} {
		if share := float64(got[name]) / 300; share < want-0.10 || share > want+0.10 {
			t.Errorf("%s: %s took %.0f%% of the connections, want %.0f%% ± 10: %v", mode, name, share*100, want*100, got)
		}
	}
	const tableSize = 4099 // svcSet's
	table, err := l4.BuildTable([]l4.MaglevBackend{
		{Addr: netip.MustParseAddr(b0), Weight: 100}, {Addr: netip.MustParseAddr(b1), Weight: 200},
		{Addr: netip.MustParseAddr(b2), Weight: 100}}, tableSize)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(lab.L4HTTPPort)
	misplaced := 0
	for _, f := range flows {
		flow := l4.Flow{Src: f.src.Addr().Unmap(), Dst: netip.MustParseAddr(lab.L4VIP),
			SrcPort: f.src.Port(), DstPort: uint16(port), Proto: 6}
		want := fmt.Sprintf("b%d", table[l4.FlowHash(flow, l4.Hash5Tuple)%tableSize])
		if f.backend != want {
			if misplaced++; misplaced <= 3 {
				t.Errorf("%s: the connection from %s was answered by %s; the Maglev table gives its flow to %s",
					mode, f.src, f.backend, want)
			}
		}
	}
	if misplaced > 3 {
		t.Errorf("%s: %d of 300 connections in all were not answered where the table puts them", mode, misplaced)
	}
	return got
}

// drainRemoveRestart holds connections to web (weightedSpread's), drains
// b0, removes b2 and kills and restarts the daemon during traffic: no held
// connection breaks and new ones follow each change. It returns the
// connections still held and the restarted daemon.
func drainRemoveRestart(t *testing.T, l *lab.L4Lab, d *lab.Daemon, mode string) (map[string][]*lab.HTTPConn, *lab.Daemon) {
	t.Helper()
	b0, b1 := lab.L4BackendAddr(0), lab.L4BackendAddr(1)
	// Long-lived connections to a drained backend keep working; new ones go elsewhere.
	held := holdConns(t, l, 30)
	if len(held["b0"]) == 0 {
		t.Fatalf("%s: no held connection landed on b0: %v", mode, held)
	}
	l.MustCLI("svc", "backend", "web", b0, "--drain")
	stillServed(t, held, mode+" after draining b0")
	if got := spread(t, l, lab.L4HTTPPort, 60); got["b0"] > 0 || got[""] > 0 {
		t.Errorf("%s: new connections after draining b0: %v", mode, got)
	}

	// Removing a backend breaks no connection to the others.
	delete(held, "b2")
	svcSet(t, l, "web", lab.L4HTTPPort, mode, b0+",state=drain", b1+",weight=200")
	stillServed(t, held, mode+" after removing b2")

	// kill -9 and a restart of the daemon during traffic break no established connection.
	stop := make(chan struct{})
	errs := make(chan error, 1)
	if len(held["b1"]) < 2 {
		t.Fatalf("%s: too few held connections on b1: %v", mode, held)
	}
	c := held["b1"][0] // asked in the background only, so requests don't interleave
	held["b1"] = held["b1"][1:]
	go func() {
		defer close(errs)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if name, err := c.Ask(); err != nil || name != "b1" {
				errs <- fmt.Errorf("request during the restart: %q, %v", name, err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	d.Kill()
	stillServed(t, held, mode+" with the daemon killed")
	d = l.StartL4Daemon()
	stillServed(t, held, mode+" after the restart")
	close(stop)
	if err := <-errs; err != nil {
		t.Errorf("%s: %v", mode, err)
	}
	if got := spread(t, l, lab.L4HTTPPort, 30); got[""] > 0 || got["b0"] > 0 || got["b2"] > 0 {
		t.Errorf("%s: new connections after the restart: %v", mode, got)
	}
	out := l.MustCLI("svc", "show", "web")
	if !strings.Contains(out, "drain") {
		t.Errorf("%s: restored service lost the drain:\n%s", mode, out)
	}
	return held, d
}

func TestL4DSRIPIP(t *testing.T) {
	l := lab.NewL4(t, 3)
	l.Decap()
	d := l.StartL4Daemon()
	b0, b1, b2 := lab.L4BackendAddr(0), lab.L4BackendAddr(1), lab.L4BackendAddr(2)
	got := weightedSpread(t, l, d, "dsr-ipip")

	// Prometheus has the service's, each backend's and the table's numbers:
	// the 300 connections' flows, and the packets of each.
	metrics := scrape(t, l.Lab)
	if n := metricValue(metrics, `sluice_service_new_flows_total{service="web"}`); n < 300 {
		t.Errorf("sluice_service_new_flows_total{service=\"web\"} = %v, want ≥ 300 (300 connections)", n)
	}
	for name, addr := range map[string]string{"b0": b0, "b1": b1, "b2": b2} {
		if n := metricValue(metrics, fmt.Sprintf(`sluice_backend_new_flows_total{backend=%q,service="web"}`, addr)); n != float64(got[name]) {
			t.Errorf("%s: sluice_backend_new_flows_total = %v, but it answered %d connections", name, n, got[name])
		}
		if n := metricValue(metrics, fmt.Sprintf(`sluice_backend_packets_total{backend=%q,service="web"}`, addr)); n < 3*float64(got[name]) {
			t.Errorf("%s: sluice_backend_packets_total = %v for %d connections (a SYN, a request, an ACK at least each)", name, n, got[name])
		}
	}
	if n := metricValue(metrics, "sluice_conntrack_entries"); n < 1 {
		t.Errorf("sluice_conntrack_entries = %v after 300 connections", n)
	}
	// Each backend's decap stripped the tunnels of its connections, the
	// last one's (no --vip) for being to a local address.
	for i, name := range []string{"b0", "b1", "b2"} {
		var st l4.DecapState
		out := l.DecapShow(i)
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("decap --show -o json: %v\n%s", err, out)
		}
		if st.Stripped.Packets < 3*uint64(got[name]) || st.NotLocal.Packets != 0 || st.Local != (i == 2) || len(st.Interfaces) != 1 {
			t.Errorf("%s: decap --show after %d connections: %s", name, got[name], out)
		}
	}

	// UDP through the tunnel: each flow keeps its backend, flows spread.
	l.MustCLI("svc", "set", "dns", "--vip", lab.L4VIP, "--port", lab.L4UDPPort, "--proto", "udp", "--mode", "dsr-ipip",
		"--backend", b0, "--backend", b1, "--backend", b2)
	if udp := udpFlows(t, l, 30); len(udp) < 2 {
		t.Errorf("30 UDP flows through dsr-ipip reached %v: want more than one backend", udp)
	}

	// The VIP answers ping at the NIC.
	if out, err := l.Run(l.Client, 5*time.Second, "ping", "-c", "1", "-W", "1", lab.L4VIP); err != nil {
		t.Errorf("ping the VIP: %v\n%s", err, out)
	}

	held, d := drainRemoveRestart(t, l, d, "dsr-ipip")

	// An upgrade from a version without lb_svc_ids (services by id, which
	// connection-table hits read) breaks no connection either: the daemon
	// makes the map beside the pinned ones and fills it.
	d.Kill()
	pin := filepath.Join(l.BPFFS, "maps", "lb_svc_ids")
	if err := os.Remove(pin); err != nil {
		t.Fatalf("remove the pin of lb_svc_ids: %v", err)
	}
	l.StartL4Daemon()
	stillServed(t, held, "after an upgrade that brings lb_svc_ids")
	if _, err := os.Stat(pin); err != nil {
		t.Errorf("lb_svc_ids is not pinned after the upgrade: %v", err)
	}

	// The counters saw it, and the flow caches served most packets of
	// the connections: every one after a connection's first.
	stats := l.MustCLI("stats")
	if !strings.Contains(stats, "web") || !strings.Contains(stats, b1) {
		t.Errorf("stats miss the service:\n%s", stats)
	}
	var st client.Stats
	if err := json.Unmarshal([]byte(l.MustCLI("stats", "-o", "json")), &st); err != nil || st.L4 == nil {
		t.Fatalf("stats -o json: %v", err)
	}
	if ct := st.L4.Conntrack; ct.CacheHits == 0 || ct.CacheHits > ct.Hits {
		t.Errorf("conntrack: %d hits, %d of them from the flow caches", ct.Hits, ct.CacheHits)
	}
}

func TestL4DSRL2AndUDP(t *testing.T) {
	l := lab.NewL4(t, 3)
	d := l.StartL4Daemon()
	b0, b1 := lab.L4BackendAddr(0), lab.L4BackendAddr(1)
	// dsr-l2: no tunnel, the backends hold the VIP and get the client's frame re-addressed.
	weightedSpread(t, l, d, "dsr-l2")
	drainRemoveRestart(t, l, d, "dsr-l2")

	// UDP: the echo on the VIP answers from the VIP.
	l.MustCLI("svc", "set", "dns", "--vip", lab.L4VIP, "--port", lab.L4UDPPort, "--proto", "udp", "--mode", "dsr-l2",
		"--backend", b0, "--backend", b1)
	if udp := udpFlows(t, l, 20); len(udp) != 2 {
		t.Errorf("20 UDP flows through dsr-l2 reached %v: want both backends", udp)
	}
	for i := range 20 {
		c, err := l.DialUDP(net.JoinHostPort(lab.L4VIP, lab.L4UDPPort))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		msg := fmt.Sprintf("ping %d", i)
		buf := make([]byte, 64)
		_, err = c.Write([]byte(msg))
		n := 0
		if err == nil {
			n, err = c.Read(buf)
		}
		c.Close()
		if err != nil || string(buf[:n]) != msg {
			t.Errorf("udp %d: %q, %v", i, buf[:n], err)
		}
	}
}
