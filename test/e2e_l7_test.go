package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/emmansun/gmsm/smx509"

	"github.com/sluicelb/sluice/l7/tlcp"
	"github.com/sluicelb/sluice/test/lab"
)

// l7Lab is a lab with the daemon, three upstream servers, an l7 service on
// the VIP's port 80 (IPv4 and IPv6) and 443, and a virtual server on each
// sending / to the upstream "app".
func l7Lab(t *testing.T, daemonArgs ...string) (*lab.Lab, *lab.Daemon, []*lab.Upstream) {
	t.Helper()
	l := lab.New(t)
	ups := l.StartUpstreams(3)
	d := l.StartDaemon(daemonArgs...)
	l.MustCLI("svc", "set", "web", "--vip", lab.L7VIP, "--port", "80", "--mode", "l7")
	l.MustCLI("svc", "set", "web6", "--vip", lab.L7VIP6, "--port", "80", "--mode", "l7")
	l.MustCLI("svc", "set", "secure", "--vip", lab.L7VIP, "--port", "443", "--mode", "l7")
	l.MustCLI("upstream", "set", "app", "--server", ups[0].Addr, "--server", ups[1].Addr, "--server", ups[2].Addr)
	for vs, svc := range map[string]string{"site": "web", "site6": "web6"} {
		l.MustCLI("vs", "set", vs, "--service", svc)
		l.MustCLI("location", "set", vs, "root", "--path", "/", "--upstream", "app")
	}
	return l, d, ups
}

func curl(t *testing.T, l *lab.Lab, args ...string) string {
	t.Helper()
	out, err := l.Run(l.Client, 15*time.Second, append([]string{"curl", "-sS", "--max-time", "5"}, args...)...)
	if err != nil {
		t.Errorf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestL7ClientsReachUpstreamsThroughTheVIPOverEveryProtocol(t *testing.T) {
	l, _, _ := l7Lab(t)
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir, "site", "www.example.com")
	l.MustCLI("cert", "set", "site", "--cert", certFile, "--key", keyFile)
	l.MustCLI("vs", "set", "secure", "--service", "secure", "--tls")
	l.MustCLI("location", "set", "secure", "root", "--path", "/", "--upstream", "app")

	vip := "http://" + lab.L7VIP + "/"
	for name, args := range map[string][]string{
		"HTTP/1.1":        {vip},
		"h2c":             {"--http2-prior-knowledge", vip},
		"IPv6":            {"http://[" + lab.L7VIP6 + "]/"},
		"HTTP/2 over TLS": {"--http2", "-k", "--resolve", "www.example.com:443:" + lab.L7VIP, "https://www.example.com/"},
	} {
		out := curl(t, l, append([]string{"-w", "\n%{http_version}"}, args...)...)
		if !strings.Contains(out, "hello from u") {
			t.Errorf("%s: %q", name, out)
		}
		if want := map[string]string{"h2c": "2", "HTTP/2 over TLS": "2"}[name]; want != "" && !strings.HasSuffix(strings.TrimSpace(out), want) {
			t.Errorf("%s: answered over HTTP/%s", name, out[strings.LastIndex(out, "\n")+1:])
		}
	}

	// Two chunked uploads in one curl run: both bodies reach the upstream
	// whole, and the second goes over the first's connection.
	out := curl(t, l, "-H", "Transfer-Encoding: chunked", "--data-binary", "hello world", "-D", "-",
		"-w", "connects=%{num_connects}\n", vip, vip)
	if strings.Count(out, "X-Seen-Body-Bytes: 11\r\n") != 2 || !strings.Contains(out, "connects=1\n") ||
		!strings.Contains(out, "connects=0\n") {
		t.Errorf("two chunked uploads: want both bodies whole over one connection, got %q", out)
	}

	// A Go client sees X-Forwarded-For with its own address at the upstream.
	c := lab.HTTPClient(l.Client, nil, false)
	resp, err := c.Get(vip)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Seen-XFF"); got != lab.ClientAddr {
		t.Errorf("X-Forwarded-For at the upstream: %q, want %s", got, lab.ClientAddr)
	}

	// WebSocket: the upgrade passes through and the echo works both ways.
	ws := dialWebSocket(t, l)
	defer ws.Close()
	ws.expectEcho(t, "echo me")

	// gRPC over h2c: the message comes back with its trailer; the upstream
	// saw HTTP/2.
	h2c := lab.HTTPClient(l.Client, nil, true)
	msg := "\x00\x00\x00\x00\x05hello"
	req, _ := http.NewRequest("POST", vip+"echo.Echo/Say", strings.NewReader(msg))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	resp, err = h2c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != msg || resp.Trailer.Get("Grpc-Status") != "0" || resp.Header.Get("X-Upstream-Proto") != "HTTP/2.0" {
		t.Errorf("grpc echo: body %q trailer %q upstream proto %q", body, resp.Trailer.Get("Grpc-Status"), resp.Header.Get("X-Upstream-Proto"))
	}
}

func TestL7SNIPicksTheCertificateAndASwapAppliesToTheNextHandshake(t *testing.T) {
	l, _, _ := l7Lab(t)
	dir := t.TempDir()
	aCert, aKey := writeCert(t, dir, "a-old", "a.example.com")
	bCert, bKey := writeCert(t, dir, "b", "*.b.example.com")
	l.MustCLI("cert", "set", "a", "--cert", aCert, "--key", aKey)
	l.MustCLI("cert", "set", "b", "--cert", bCert, "--key", bKey, "--default")
	l.MustCLI("vs", "set", "secure", "--service", "secure", "--tls")
	l.MustCLI("location", "set", "secure", "root", "--path", "/", "--upstream", "app")

	subject := func(sni string) string {
		t.Helper()
		raw, err := lab.DialFrom(l.Client, lab.L7VIP+":443", 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c := tls.Client(raw, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := c.Handshake(); err != nil {
			t.Fatalf("handshake for %s: %v", sni, err)
		}
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	for sni, want := range map[string]string{"a.example.com": "a-old", "x.b.example.com": "b", "other.test": "b"} {
		if got := subject(sni); got != want {
			t.Errorf("SNI %s: certificate %q, want %q", sni, got, want)
		}
	}
	// A connection opened before the swap keeps working after it.
	c := lab.HTTPClient(l.Client, &tls.Config{ServerName: "a.example.com", InsecureSkipVerify: true}, false)
	if resp, err := c.Get("https://" + lab.L7VIP + "/"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("https before the swap: %v", err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	aNew, aNewKey := writeCert(t, dir, "a-new", "a.example.com")
	l.MustCLI("cert", "set", "a", "--cert", aNew, "--key", aNewKey)
	if got := subject("a.example.com"); got != "a-new" {
		t.Errorf("after the swap: %q, want a-new", got)
	}
	resp, err := c.Get("https://" + lab.L7VIP + "/")
	if err != nil || resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].Subject.CommonName != "a-old" {
		t.Errorf("the connection from before the swap: %v", err)
	}
	if resp != nil {
		resp.Body.Close()
	}
}

// webSocket is a WebSocket through the VIP to an upstream's echo.
type webSocket struct {
	net.Conn
	br *bufio.Reader
}

func dialWebSocket(t *testing.T, l *lab.Lab) *webSocket {
	t.Helper()
	conn, err := lab.DialFrom(l.Client, lab.L7VIP+":80", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(conn, "GET /ws HTTP/1.1\r\nHost: www.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		t.Fatalf("websocket upgrade: %v, %v", resp, err)
	}
	return &webSocket{Conn: conn, br: br}
}

// expectEcho sends a line and wants it back upper-cased.
func (ws *webSocket) expectEcho(t *testing.T, msg string) {
	t.Helper()
	ws.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(ws, msg+"\n")
	if line, err := ws.br.ReadString('\n'); err != nil || line != strings.ToUpper(msg)+"\n" {
		t.Errorf("websocket echo of %q: %q, %v", msg, line, err)
	}
}

// load sends requests from the client until stop closes and counts them.
func load(l *lab.Lab, workers int, stop <-chan struct{}) (wait func() (total, failed int64, firstErr string)) {
	var tot, bad atomic.Int64
	var mu sync.Mutex
	first := ""
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := lab.HTTPClient(l.Client, nil, false)
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("http://" + lab.L7VIP + "/")
				tot.Add(1)
				msg := ""
				if err != nil {
					msg = err.Error()
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						msg = fmt.Sprintf("%d %s", resp.StatusCode, b)
					}
				}
				if msg != "" {
					bad.Add(1)
					mu.Lock()
					if first == "" {
						first = msg
					}
					mu.Unlock()
				}
			}
		}()
	}
	return func() (int64, int64, string) {
		wg.Wait()
		return tot.Load(), bad.Load(), first
	}
}

func TestL7UpstreamChangesAndAKilledServerFailNoRequest(t *testing.T) {
	l, _, ups := l7Lab(t)
	stop := make(chan struct{})
	wait := load(l, 4, stop)
	time.Sleep(300 * time.Millisecond)
	// Servers added and removed through the dynamic upstream API under load.
	for range 3 {
		l.MustCLI("upstream", "server", "del", "app", "1")
		time.Sleep(100 * time.Millisecond)
		out := l.MustCLI("upstream", "server", "add", "app", ups[0].Addr, "-o", "json")
		var sv struct {
			ID int `json:"id"`
		}
		if err := json.Unmarshal([]byte(out), &sv); err != nil {
			t.Fatalf("server add answered %q: %v", out, err)
		}
		time.Sleep(100 * time.Millisecond)
		l.MustCLI("upstream", "server", "del", "app", fmt.Sprint(sv.ID))
		l.MustCLI("upstream", "set", "app", "--server", ups[0].Addr, "--server", ups[1].Addr, "--server", ups[2].Addr)
		time.Sleep(100 * time.Millisecond)
	}
	// A server dies mid-load: requests fail over to the others.
	ups[1].Kill()
	time.Sleep(time.Second)
	close(stop)
	total, failed, first := wait()
	if failed > 0 || total < 50 {
		t.Errorf("%d of %d requests failed (first: %s)", failed, total, first)
	}
	var view struct {
		Servers []struct {
			Addr      string `json:"addr"`
			Available bool   `json:"available"`
		} `json:"servers"`
	}
	if err := json.Unmarshal([]byte(l.MustCLI("upstream", "show", "app", "-o", "json")), &view); err != nil {
		t.Fatal(err)
	}
	for _, s := range view.Servers {
		if s.Addr == ups[1].Addr && s.Available {
			t.Errorf("the killed server is still available: %+v", view.Servers)
		}
	}
}

// SIGUSR2 upgrades the daemon in place, as nginx's binary upgrade does: a
// new process takes over the listeners, the maps and the state while
// requests flow, and none fails; a WebSocket opened before keeps echoing
// through the old process, which exits once it has drained; the new one
// serves the API with the same state and can be upgraded in turn.
func TestL7UpgradeInPlaceFailsNoRequest(t *testing.T) {
	notified := serviceManager(t)
	l, d, ups := l7Lab(t)
	ws := dialWebSocket(t, l)
	defer ws.Close()
	stop := make(chan struct{})
	wait := load(l, 4, stop)
	defer func() {
		close(stop)
		if total, failed, first := wait(); failed > 0 || total < 100 {
			t.Errorf("%d of %d requests failed across the upgrades (first: %s)", failed, total, first)
		}
	}()
	time.Sleep(300 * time.Millisecond)

	first := l.DaemonPID()
	expectNotified(t, notified, first)
	second := l.UpgradeDaemon()
	// Under systemd (Type=notify, NotifyAccess=all) the successor becomes
	// the unit's main process, so the old one's exit stops nothing.
	expectNotified(t, notified, second)
	ws.expectEcho(t, "still here") // the first process still relays it
	if !lab.Alive(first) {
		t.Error("the first daemon exited while a WebSocket through it was open")
	}
	ws.Close()
	if !lab.Eventually(15*time.Second, func() bool { return !lab.Alive(first) }) {
		t.Errorf("the first daemon (pid %d) still runs 15 s after its last connection closed", first)
	}

	// The successor has the state and takes changes.
	out := l.MustCLI("upstream", "show", "app", "-o", "json")
	for _, u := range ups {
		if !strings.Contains(out, u.Addr) {
			t.Errorf("upstream app after the upgrade lacks %s: %s", u.Addr, out)
		}
	}
	l.MustCLI("upstream", "set", "app", "--server", ups[2].Addr)
	if got := curl(t, l, "http://"+lab.L7VIP+"/"); got != "hello from u3\n" {
		t.Errorf("after an upstream change through the successor: %q", got)
	}
	l.MustCLI("upstream", "set", "app", "--server", ups[0].Addr, "--server", ups[1].Addr, "--server", ups[2].Addr)
	if got := curl(t, l, "-g", "http://["+lab.L7VIP6+"]/"); !strings.HasPrefix(got, "hello from") {
		t.Errorf("IPv6 VIP after the upgrade: %q", got)
	}

	// And upgrades again, with nothing open that holds the old one.
	third := l.UpgradeDaemon()
	if third == second {
		t.Fatal("the second upgrade kept the pid")
	}
	if !lab.Eventually(15*time.Second, func() bool { return !lab.Alive(second) }) {
		t.Errorf("the second daemon (pid %d) still runs after handing off", second)
	}
	time.Sleep(300 * time.Millisecond)
	if log := d.Log(); !strings.Contains(log, "the successor serves") {
		t.Errorf("the daemons' log does not tell of the handoff:\n%s", log)
	}
}

// A successor that cannot start (here: its state store stays locked) fails
// the upgrade, and the daemon serves on: same process, its API back, its
// state writable, traffic through the VIP as before.
func TestL7FailedUpgradeLeavesTheDaemonServing(t *testing.T) {
	l, d, ups := l7Lab(t)
	pid := l.DaemonPID()
	db, err := os.OpenFile(filepath.Join(l.State, "state.db"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Blocked until the daemon closes the store for its successor, then
	// granted before the successor asks.
	locked := make(chan error, 1)
	go func() { locked <- syscall.Flock(int(db.Fd()), syscall.LOCK_EX) }()
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-locked:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not close its store on SIGUSR2")
	}
	if !lab.Eventually(30*time.Second, func() bool { return strings.Contains(d.Log(), "upgrade failed") }) {
		t.Fatal("no upgrade failure logged while the store was locked")
	}
	if err := syscall.Flock(int(db.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if !lab.Eventually(10*time.Second, func() bool { _, err := l.CLI("status"); return err == nil }) {
		t.Fatal("the API did not come back after the failed upgrade")
	}
	if got := l.DaemonPID(); got != pid {
		t.Errorf("the API is served by pid %d, want the daemon's own %d", got, pid)
	}
	l.MustCLI("upstream", "set", "app", "--server", ups[1].Addr)
	if got := curl(t, l, "http://"+lab.L7VIP+"/"); got != "hello from u2\n" {
		t.Errorf("after an upstream change once the upgrade failed: %q", got)
	}
}

// A successor that got further before it failed: it read a new config
// (ACL tries of another size, so it made and pinned new maps), attached its
// program and took the L7 listeners, then could not open its TCP API (the
// port is taken). The daemon serves on with its own program and maps: an
// ACL change through its API drops at the NIC, and the VIP still answers
// (the successor left the routes it borrowed).
func TestL7UpgradeThatFailsLateGivesTheDatapathBack(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(config, []byte("log_level: info\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, d, ups := l7Lab(t, "--config", config)
	pid := l.DaemonPID()
	var taken net.Listener
	if err := lab.InNS(l.LB, func() (err error) { taken, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	next := fmt.Sprintf("acl_max_entries: 4096\napi:\n  listen: %s\n  token_file: %s\n", taken.Addr(), token)
	if err := os.WriteFile(config, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if !lab.Eventually(60*time.Second, func() bool { return strings.Contains(d.Log(), "upgrade failed") }) {
		t.Fatal("the successor did not fail")
	}
	if !lab.Eventually(10*time.Second, func() bool { _, err := l.CLI("status"); return err == nil }) {
		t.Fatal("the API did not come back")
	}
	// The API comes back once the datapath is taken back.
	if !strings.Contains(d.Log(), "this daemon's are pinned again") {
		t.Errorf("the daemon did not say it pinned its maps again:\n%s", d.Log())
	}
	if got := l.DaemonPID(); got != pid {
		t.Fatalf("pid %d serves the API, want %d", got, pid)
	}
	// What runs is what the daemon reports, on its own maps.
	var st struct {
		Interfaces []struct {
			Name      string `json:"name"`
			ProgramID uint32 `json:"program_id"`
		} `json:"interfaces"`
	}
	if err := json.Unmarshal([]byte(l.MustCLI("status", "-o", "json")), &st); err != nil || len(st.Interfaces) == 0 {
		t.Fatalf("status: %v", err)
	}
	for _, ifc := range st.Interfaces {
		lk, err := link.LoadPinnedLink(filepath.Join(l.BPFFS, "links", ifc.Name), nil)
		if err != nil {
			t.Fatal(err)
		}
		info, err := lk.Info()
		lk.Close()
		if err != nil {
			t.Fatal(err)
		}
		if uint32(info.Program) != ifc.ProgramID {
			t.Errorf("%s runs program %d, the daemon reports %d", ifc.Name, info.Program, ifc.ProgramID)
		}
	}
	trie, err := ebpf.LoadPinnedMap(filepath.Join(l.BPFFS, "maps", "acl_v4"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if trie.MaxEntries() == 4096 {
		t.Error("the pinned IPv4 trie is the failed successor's (4096 entries)")
	}
	trie.Close()
	direct := "http://" + ups[0].Addr + "/"
	if got := curl(t, l, "--interface", lab.ClientAddr, direct); got != "hello from u1\n" {
		t.Fatalf("the backend through the load balancer before the deny: %q", got)
	}
	l.MustCLI("acl", "add", "blocked", lab.ClientAddr)
	if out, err := l.Run(l.Client, 10*time.Second, "curl", "-sS", "--max-time", "2", "--interface", lab.ClientAddr, direct); err == nil {
		t.Errorf("a denied client reached the backend after the failed upgrade (the packets saw other maps): %q", out)
	}
	if got := curl(t, l, "--interface", lab.ClientAddr2, "http://"+lab.L7VIP+"/"); !strings.HasPrefix(got, "hello from") {
		t.Errorf("the VIP after the failed upgrade: %q", got)
	}
}

// A daemon started without the proxy removes the local routes the intercept
// of a killed one left: the VIPs stop being local to the load balancer.
func TestL7RoutesOfAKilledDaemonGoWithoutTheProxy(t *testing.T) {
	l, d, _ := l7Lab(t)
	routes := func() string {
		out, err := l.Run(l.LB, 5*time.Second, "ip", "route", "show", "table", "local", "proto", "0x73")
		if err != nil {
			t.Fatalf("ip route: %v\n%s", err, out)
		}
		return out
	}
	if got := routes(); !strings.Contains(got, lab.L7VIP) {
		t.Fatalf("the intercept's routes: %q, want %s among them", got, lab.L7VIP)
	}
	d.Kill()
	if got := routes(); !strings.Contains(got, lab.L7VIP) {
		t.Fatalf("a killed daemon's routes went: %q", got)
	}
	l.StartDaemon("--no-l7")
	if got := routes(); strings.TrimSpace(got) != "" {
		t.Errorf("a daemon without the proxy left the intercept's routes: %q", got)
	}
}

func TestL7SlowlorisClientIsCutOff(t *testing.T) {
	l, _, _ := l7Lab(t, "--l7-header-timeout", "1")
	c, err := lab.DialFrom(l.Client, lab.L7VIP+":80", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	var cut error
	for range 50 { // a header line every 100 ms, never the blank line
		time.Sleep(100 * time.Millisecond)
		if _, err := fmt.Fprint(c, "X-Slow: 1\r\n"); err != nil {
			cut = err
			break
		}
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 512)); err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				cut = err
				break
			}
		}
	}
	if cut == nil {
		t.Fatalf("a slowloris client still connected after %v", time.Since(start))
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("cut off after %v, want about the 1 s header timeout", took)
	}
	// Meanwhile everyone else is served.
	if out := curl(t, l, "http://"+lab.L7VIP+"/"); !strings.Contains(out, "hello from") {
		t.Errorf("after the slowloris: %q", out)
	}
}

func TestL7AccessLogAndStatistics(t *testing.T) {
	l, d, _ := l7Lab(t)
	logFile := filepath.Join(t.TempDir(), "access.log")
	l.MustCLI("log", "set", "--format", "json", "--path", logFile)
	for range 5 {
		curl(t, l, "-H", "User-Agent: e2e-agent", "http://"+lab.L7VIP+"/page")
	}
	curl(t, l, "http://["+lab.L7VIP6+"]/") // another vserver, logged too
	var lines []map[string]any
	lab.Eventually(5*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		lines = nil
		for _, ln := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(ln), &m) == nil {
				lines = append(lines, m)
			}
		}
		return len(lines) >= 6
	})
	agents := 0
	for _, m := range lines {
		if m["user_agent"] == "e2e-agent" && fmt.Sprint(m["status"]) == "200" && m["uri"] == "/page" {
			agents++
		}
	}
	if agents != 5 {
		t.Errorf("access log has %d of the 5 requests: %v", agents, lines)
	}

	// logrotate: the file is moved away, SIGUSR1 reopens it at its path.
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if !lab.Eventually(5*time.Second, func() bool { _, err := os.Stat(logFile); return err == nil }) {
		t.Fatal("SIGUSR1 did not reopen the access log")
	}
	curl(t, l, "http://"+lab.L7VIP+"/after-rotate")
	if !lab.Eventually(5*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), `"/after-rotate"`)
	}) {
		t.Error("a request after the rotation is not in the new file")
	}
	if b, _ := os.ReadFile(logFile + ".1"); strings.Contains(string(b), "after-rotate") {
		t.Error("a request after the rotation went to the rotated file")
	}
	// A new format applies at runtime.
	l.MustCLI("log", "set", "--format", "template", "--template", "$remote_addr $status $request_uri $upstream_addr", "--path", logFile)
	curl(t, l, "http://"+lab.L7VIP+"/templated")
	if !lab.Eventually(5*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), lab.ClientAddr+" 200 /templated "+lab.BackendAddr+":")
	}) {
		b, _ := os.ReadFile(logFile)
		t.Errorf("templated line missing:\n%s", b)
	}

	stats := l.MustCLI("stats", "--l7", "-o", "json")
	if !strings.Contains(stats, `"site"`) || !strings.Contains(stats, `"app"`) {
		t.Errorf("l7 stats miss the vserver or the upstream:\n%s", stats)
	}
	// Seven requests to "site": the five above and the two around the rotation.
	metrics, err := l.Run(l.LB, 10*time.Second, "curl", "-sS", "--unix-socket", l.Socket, "http://sluice/metrics")
	if err != nil || !strings.Contains(metrics, `sluice_l7_requests_total{vserver="site"} 7`) {
		t.Errorf("prometheus: %v\n%s", err, grepLines(metrics, "sluice_l7_requests_total"))
	}
	// Each curl was a client connection of its own, closed once it got its answer.
	if !lab.Eventually(5*time.Second, func() bool {
		metrics, _ = l.Run(l.LB, 10*time.Second, "curl", "-sS", "--unix-socket", l.Socket, "http://sluice/metrics")
		return strings.Contains(metrics, "sluice_l7_client_connections 0\n")
	}) || metricValue(metrics, "sluice_l7_client_connections_accepted_total") < 7 {
		t.Errorf("prometheus, client connections:\n%s", grepLines(metrics, "sluice_l7_client_connections"))
	}
	ui, err := l.Run(l.LB, 10*time.Second, "curl", "-sS", "--unix-socket", l.Socket, "http://sluice/ui/")
	if err != nil || !strings.Contains(ui, "/v1/stats/l7") {
		t.Errorf("dashboard: %v\n%.300s", err, ui)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, ln := range strings.Split(s, "\n") {
		if strings.Contains(ln, sub) {
			out = append(out, ln)
		}
	}
	return strings.Join(out, "\n")
}

// writeCert writes a self-signed certificate with common name cn for the
// names, and its key, into dir.
func writeCert(t *testing.T, dir, cn string, names ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestL7TLCPAndTLSShareThePortThroughTheVIP(t *testing.T) {
	l, _, _ := l7Lab(t)
	dir := t.TempDir()
	l.MustCLI("tlcp", "gen-certs", "--name", "gm.example.com", dir)
	base := filepath.Join(dir, "gm.example.com")
	l.MustCLI("cert", "set", "gm", "--kind", "tlcp", "--sign-cert", base+"-sign.crt", "--sign-key", base+"-sign.key",
		"--enc-cert", base+"-enc.crt", "--enc-key", base+"-enc.key")
	certFile, keyFile := writeCert(t, dir, "tls", "gm.example.com")
	l.MustCLI("cert", "set", "tls", "--cert", certFile, "--key", keyFile)
	l.MustCLI("vs", "set", "secure", "--service", "secure", "--tls")
	l.MustCLI("location", "set", "secure", "root", "--path", "/", "--upstream", "app")

	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := smx509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	raw, err := lab.DialFrom(l.Client, lab.L7VIP+":443", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := tlcp.Client(raw, &tlcp.Config{ServerName: "gm.example.com", RootCAs: roots})
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: gm.example.com\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("TLCP through the VIP: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "hello from u") || resp.Header.Get("X-Seen-Proto") != "https" {
		t.Errorf("TLCP through the VIP: %d %q (X-Forwarded-Proto %q)", resp.StatusCode, body, resp.Header.Get("X-Seen-Proto"))
	}
	// The same port answers TLS with HTTP/2.
	out := curl(t, l, "-k", "--http2", "-w", "\n%{http_version}", "--resolve", "gm.example.com:443:"+lab.L7VIP, "https://gm.example.com/")
	if !strings.Contains(out, "hello from u") || !strings.HasSuffix(strings.TrimSpace(out), "2") {
		t.Errorf("TLS on the TLCP port: %q", out)
	}
}

func TestL7TLCPUpstreamBehindTheProxy(t *testing.T) {
	l, _, _ := l7Lab(t)
	dir := t.TempDir()
	l.MustCLI("tlcp", "gen-certs", "--name", "gm.backend.test", dir)
	b := lab.Build(t)
	gmAddr := lab.BackendAddr + ":8443"
	l.Start(l.Backend, b.Tool, "serve", "-name", "gm", "-tlcp", gmAddr, "-tlcp-certs", dir, "-tlcp-name", "gm.backend.test")
	l.MustCLI("upstream", "set", "gm", "--server", gmAddr, "--tls", "tlcp", "--tls-server-name", "gm.backend.test",
		"--tls-ca", filepath.Join(dir, "ca.crt"))
	l.MustCLI("location", "set", "site", "gm", "--path", "/gm/", "--upstream", "gm")
	out := curl(t, l, "-i", "http://"+lab.L7VIP+"/gm/x")
	if !strings.Contains(out, "hello from gm") || !strings.Contains(out, "X-Served-Over: TLCP") {
		t.Errorf("through a TLCP upstream:\n%s", out)
	}
}

// serviceManager stands in for systemd's side of sd_notify: a unixgram
// socket whose path the daemons it starts find in $NOTIFY_SOCKET (a path,
// not an abstract name, so it reaches them in their network namespace).
func serviceManager(t *testing.T) <-chan string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	got := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			select {
			case got <- string(buf[:n]):
			default:
			}
		}
	}()
	return got
}

// expectNotified waits, bounded, for a notification that pid serves and is
// the main process.
func expectNotified(t *testing.T, notified <-chan string, pid int) {
	t.Helper()
	want := fmt.Sprintf("MAINPID=%d", pid)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case msg := <-notified:
			if strings.Contains(msg, "READY=1") && strings.Contains(msg, want) {
				return
			}
		case <-deadline:
			t.Fatalf("no READY=1 with %s reached the service manager", want)
		}
	}
}
