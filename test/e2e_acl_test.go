// Package e2e holds the end-to-end tests: real namespaces, the real daemon
// binary and real traffic.
package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicelb/sluice/test/lab"
)

func writeList(t *testing.T, dir, name string, lines ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDeniedSourceGetsNoReply(t *testing.T) {
	l := lab.New(t)
	l.StartBackend()
	l.StartDaemon()
	for _, proto := range []string{"tcp", "udp", "icmp", "http"} {
		if !l.Reaches(proto, lab.ClientAddr, lab.BackendAddr) {
			t.Fatalf("%s from %s does not reach the backend before any list", proto, lab.ClientAddr)
		}
	}
	l.MustCLI("acl", "set", "--kind", "deny", "--file", writeList(t, l.Dir, "blocked.txt", "# one client", lab.ClientAddr), "blocked")
	for _, proto := range []string{"tcp", "udp", "icmp", "http"} {
		if l.Reaches(proto, lab.ClientAddr, lab.BackendAddr) {
			t.Errorf("%s from denied %s got a reply", proto, lab.ClientAddr)
		}
		if !l.Reaches(proto, lab.ClientAddr2, lab.BackendAddr) {
			t.Errorf("%s from undenied %s got no reply", proto, lab.ClientAddr2)
		}
	}
	// A /24 covers both client addresses.
	l.MustCLI("acl", "set", "--file", writeList(t, l.Dir, "net.txt", "10.99.1.0/24"), "blocked")
	if l.Reaches("tcp", lab.ClientAddr2, lab.BackendAddr) {
		t.Error("tcp from inside a denied /24 got a reply")
	}
	var check struct{ Verdict, Reason string }
	if err := json.Unmarshal([]byte(l.MustCLI("acl", "check", "-o", "json", lab.ClientAddr2)), &check); err != nil {
		t.Fatal(err)
	}
	if check.Verdict != "drop" || check.Reason != "acl_deny" {
		t.Errorf("acl check = %+v, want drop by acl_deny", check)
	}
}

func TestIPv6DeniedSourceGetsNoReply(t *testing.T) {
	l := lab.New(t)
	l.StartBackend()
	l.StartDaemon()
	if !lab.Eventually(5*time.Second, func() bool { return l.Reaches("tcp", lab.ClientAddr6, lab.BackendAddr6) }) {
		t.Fatal("tcp over IPv6 does not reach the backend before any list")
	}
	l.MustCLI("acl", "add", "v6", "fd99:1::/64")
	for _, proto := range []string{"tcp", "udp", "icmp"} {
		if l.Reaches(proto, lab.ClientAddr6, lab.BackendAddr6) {
			t.Errorf("%s over IPv6 from a denied /64 got a reply", proto)
		}
	}
	if !l.Reaches("tcp", lab.ClientAddr, lab.BackendAddr) {
		t.Error("IPv4 from the same client was dropped by an IPv6 list")
	}
}

func TestAllowListModeAdmitsOnlyListed(t *testing.T) {
	l := lab.New(t)
	l.StartBackend()
	l.StartDaemon()
	l.MustCLI("acl", "set", "--kind", "allow", "--file", writeList(t, l.Dir, "friends.txt", lab.ClientAddr, lab.BackendAddr, "fd99::/16"), "friends")
	l.MustCLI("acl", "policy", "allow")
	if !l.Reaches("tcp", lab.ClientAddr, lab.BackendAddr) {
		t.Error("an allowed source got no reply in allow-list mode")
	}
	if l.Reaches("tcp", lab.ClientAddr2, lab.BackendAddr) {
		t.Error("an unlisted source got a reply in allow-list mode")
	}
	// Deny lists still drop inside an allowed range; protect beats both.
	l.MustCLI("acl", "add", "bad", lab.ClientAddr)
	if l.Reaches("tcp", lab.ClientAddr, lab.BackendAddr) {
		t.Error("a source in a deny list got a reply in allow-list mode")
	}
	l.MustCLI("acl", "protect", lab.ClientAddr+"/32")
	if !l.Reaches("tcp", lab.ClientAddr, lab.BackendAddr) {
		t.Error("a protected source was dropped")
	}
}

func TestListChangeAppliesToNextPacket(t *testing.T) {
	l := lab.New(t)
	l.StartBackend()
	l.StartDaemon()
	for i := 0; i < 3; i++ {
		l.MustCLI("acl", "add", "flip", lab.ClientAddr)
		if l.Reaches("udp", lab.ClientAddr, lab.BackendAddr) {
			t.Fatalf("round %d: the packet after `acl add` got a reply", i)
		}
		l.MustCLI("acl", "del", "flip", lab.ClientAddr)
		if !l.Reaches("udp", lab.ClientAddr, lab.BackendAddr) {
			t.Fatalf("round %d: the packet after `acl del` got no reply", i)
		}
	}
}

func TestMillionEntrySync(t *testing.T) {
	l := lab.New(t)
	l.StartBackend()
	l.StartDaemon()
	path := filepath.Join(l.Dir, "million.txt")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// 900k /32s and 99,999 /24s in 11.0.0.0/8 … 60.0.0.0/8, plus the client.
	for i := 0; i < 900_000; i++ {
		fmt.Fprintf(f, "%d.%d.%d.%d\n", 11+i>>16, (i>>8)&255, i&255, 1+i%250)
	}
	for i := 0; i < 99_999; i++ {
		fmt.Fprintf(f, "%d.%d.%d.0/24\n", 100+i>>16, (i>>8)&255, i&255)
	}
	fmt.Fprintln(f, lab.ClientAddr)
	f.Close()
	start := time.Now()
	out := l.MustCLI("acl", "set", "--file", path, "-o", "json", "big")
	t.Logf("1M-entry acl set took %v", time.Since(start))
	var res struct{ Entries, Added int }
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err, out)
	}
	if res.Entries != 1_000_000 || res.Added != 1_000_000 {
		t.Fatalf("sync answered %s; want 1,000,000 entries added", out)
	}
	if l.Reaches("tcp", lab.ClientAddr, lab.BackendAddr) {
		t.Error("the client in a 1M-entry deny list got a reply")
	}
	if !l.Reaches("tcp", lab.ClientAddr2, lab.BackendAddr) {
		t.Error("a client not in the 1M-entry list got no reply")
	}
	var list struct {
		Lists []struct {
			Name    string
			Entries int
		}
	}
	if err := json.Unmarshal([]byte(l.MustCLI("acl", "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Lists) != 1 || list.Lists[0].Entries != 1_000_000 {
		t.Fatalf("acl list = %+v", list)
	}
}

func TestKillDashNineKeepsDenying(t *testing.T) {
	l := lab.New(t)
	l.StartBackend()
	d := l.StartDaemon()
	l.MustCLI("acl", "add", "blocked", lab.ClientAddr)
	before := l.MustCLI("acl", "list", "-o", "json")

	// A denied and an allowed client each send 100 pings a second for 6 s;
	// the daemon is killed with SIGKILL after 1 s and restarted after 2 s.
	type result struct {
		out string
		err error
	}
	ping := func(src string) chan result {
		ch := make(chan result, 1)
		go func() {
			out, err := l.Run(l.Client, 20*time.Second, "ping", "-q", "-i", "0.01", "-w", "6", "-I", src, lab.BackendAddr)
			ch <- result{out, err}
		}()
		return ch
	}
	deniedCh, allowedCh := ping(lab.ClientAddr), ping(lab.ClientAddr2)
	time.Sleep(time.Second)
	d.Kill()
	time.Sleep(time.Second)
	l.StartDaemon()
	denied, allowed := <-deniedCh, <-allowedCh
	var sent, got int
	if _, err := fmt.Sscanf(pingSummary(denied.out), "%d packets transmitted, %d received", &sent, &got); err != nil || sent < 100 {
		t.Fatalf("denied ping: %v\n%s", err, denied.out)
	}
	if got != 0 {
		t.Errorf("the denied client got %d of %d replies across kill -9 and restart", got, sent)
	}
	if _, err := fmt.Sscanf(pingSummary(allowed.out), "%d packets transmitted, %d received", &sent, &got); err != nil || sent < 100 {
		t.Fatalf("allowed ping: %v\n%s", err, allowed.out)
	}
	if sent-got > 1 { // the last probe may still be in flight at the deadline
		t.Errorf("the allowed client lost %d of %d pings across kill -9 and restart", sent-got, sent)
	}
	if after := l.MustCLI("acl", "list", "-o", "json"); after != before {
		t.Errorf("state after restart:\n%s\nwant:\n%s", after, before)
	}
	if l.Reaches("tcp", lab.ClientAddr, lab.BackendAddr) {
		t.Error("the restarted daemon lets the denied client through")
	}
}

// pingSummary returns the "N packets transmitted, M received" line.
func pingSummary(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "packets transmitted") {
			return line
		}
	}
	return ""
}

func TestStateSurvivesRestart(t *testing.T) {
	l := lab.New(t)
	l.StartBackend()
	d := l.StartDaemon()
	l.MustCLI("acl", "set", "--kind", "allow", "--file", writeList(t, l.Dir, "f.txt", "10.99.0.0/16", "fd99::/16"), "friends")
	l.MustCLI("acl", "add", "bad", "192.0.2.0/24", "2001:db8::/32")
	l.MustCLI("acl", "protect", "10.99.2.0/24")
	l.MustCLI("acl", "policy", "allow")
	before := l.MustCLI("acl", "list", "-o", "json") + l.MustCLI("acl", "protect", "-o", "json") + l.MustCLI("acl", "show", "-o", "json", "bad")
	d.Stop()
	l.StartDaemon()
	after := l.MustCLI("acl", "list", "-o", "json") + l.MustCLI("acl", "protect", "-o", "json") + l.MustCLI("acl", "show", "-o", "json", "bad")
	if after != before {
		t.Fatalf("state after restart:\n%s\nwant:\n%s", after, before)
	}
	if !l.Reaches("tcp", lab.ClientAddr, lab.BackendAddr) {
		t.Error("an allowed client got no reply after restart")
	}
}

func TestMetricsShowDrops(t *testing.T) {
	l := lab.New(t)
	l.StartBackend()
	tokenFile := filepath.Join(l.Dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l.StartDaemon("--api-listen", "127.0.0.1:9477", "--api-token-file", tokenFile)
	l.MustCLI("acl", "add", "blocked", lab.ClientAddr)
	for i := 0; i < 3; i++ {
		l.Reaches("udp", lab.ClientAddr, lab.BackendAddr)
	}
	// The TCP API lives in the load balancer's namespace: scrape from there.
	noToken, _ := l.Run(l.LB, 10*time.Second, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:9477/metrics")
	if noToken != "401" {
		t.Errorf("metrics without a token answered %q, want 401", noToken)
	}
	out, err := l.Run(l.LB, 10*time.Second, "curl", "-sf", "-H", "Authorization: Bearer s3cret", "http://127.0.0.1:9477/metrics")
	if err != nil {
		t.Fatal(err, out)
	}
	for _, want := range []string{`sluice_acl_drops_total{list="blocked"} 3`, `sluice_drops_total{reason="acl_deny"} 3`,
		`sluice_acl_entries{list="blocked"} 1`, `sluice_xdp_packets_total{iface="` + l.LBIf + `",verdict="drop"} 3`, "sluice_build_info{"} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
