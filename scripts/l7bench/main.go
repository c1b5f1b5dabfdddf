// Command l7bench measures Sluice's L7 proxy against nginx and HAProxy
// proxying the same backend, side by side in one run: wrk, HTTP/1.1
// keep-alive, -conns connections, each proxy alone on CPU 1 (GOMAXPROCS=1,
// worker_processes 1, nbthread 1), wrk and the backend on CPU 0. The
// backend is nginx (one worker) answering `return 200 "ok"` from memory, so
// every proxy sees the same small, cheap response. Every proxy sends it the
// same request: the client's, with the four forwarding headers Sluice
// writes (X-Forwarded-For, -Host, -Proto and Forwarded). Parsing them is the
// backend's work, on the load CPU, which sets the pace: a peer sending only
// X-Forwarded-For would be measured doing less.
//
//	go run ./scripts/l7bench [-duration 10s] [-rounds 3] [-conns 64] [-profile DIR]
//
// The contenders are loaded in turn, -rounds times, every other round in
// reverse order ("roundN name requests-per-second p99" lines). "direct" is
// wrk against the backend with no proxy: the ceiling. Then, -rounds times,
// "shared": Sluice and each other proxy are loaded at once, each by its own
// wrk with half the connections, while they share the proxy CPU ("sharedN
// sluice/nginx ratio sluice-rps nginx-rps" lines, then "shared sluice/nginx
// median-ratio"). The scheduler gives both the same share of the core, so
// the ratio of their request rates is the inverse ratio of their CPU cost
// per request; the machine's drift, which moves consecutive single runs by
// up to 30%, hits both alike. Last, one "name requests-per-second p99" line
// per contender, the medians of its rounds ("name not-measured" when one
// could not be set up), and the ratios to nginx: "paired name/nginx
// rps-ratio p99-ratio", the medians of the rounds' own ratios. With
// -profile, Sluice's proxy writes cpu.pprof and mem.pprof to DIR
// covering its life. Root is not needed; nginx, haproxy, wrk and
// taskset are (scripts/deps.sh bench). Everything it starts is stopped on
// exit, interrupt included; configs live in a temporary directory.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	duration = flag.Duration("duration", 10*time.Second, "measured wrk run per contender")
	warmup   = flag.Duration("warmup", 2*time.Second, "unmeasured wrk run before each measured one")
	conns    = flag.Int("conns", 64, "wrk connections")
	rounds   = flag.Int("rounds", 3, "measured runs per contender, taken in turn; the median counts")
	only     = flag.String("only", "", "comma-separated contenders to run (direct,sluice,nginx,haproxy); all when empty")
	profile  = flag.String("profile", "", "directory for Sluice's cpu.pprof and mem.pprof")
	proxyCPU = flag.Int("proxy-cpu", 1, "CPU the proxies run on")
	loadCPU  = flag.Int("load-cpu", 0, "CPU wrk and the backend run on")
	spread   = flag.Bool("latency", false, "print each round's latency distribution (wrk's 50/75/90/99%)")
)

// result is one contender's measurement.
type result struct {
	name   string
	rps    float64
	p99    time.Duration
	err    error
	rounds []result // a contender's result: its rounds, in order
}

func main() {
	flag.Parse()
	for _, tool := range []string{"nginx", "haproxy", "wrk", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			fail(fmt.Errorf("%s not found (scripts/deps.sh bench): %w", tool, err))
		}
	}
	// Also when the terminal hangs up or the output pipe closes (`| head`
	// would otherwise kill it outright): no proxy or backend outlives it.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	go func() {
		s := <-sig
		stopAll()
		fmt.Fprintln(os.Stderr, "l7bench: interrupted by", s)
		os.Exit(130)
	}()
	if *rounds < 1 {
		fail(fmt.Errorf("-rounds %d: want at least 1", *rounds))
	}
	err := run()
	stopAll()
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	stopAll()
	fmt.Fprintln(os.Stderr, "l7bench:", err)
	os.Exit(1)
}

func run() error {
	dir, err := os.MkdirTemp("", "l7bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	want := func(name string) bool {
		return *only == "" || strings.Contains(","+*only+",", ","+name+",")
	}

	backendPort := freePort()
	backendAddr := fmt.Sprintf("127.0.0.1:%d", backendPort)
	backendDir := filepath.Join(dir, "backend")
	if _, err := startNginx(backendDir, nginxBackendConf(backendPort), *loadCPU); err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	if err := waitListening(backendAddr); err != nil {
		return fmt.Errorf("backend: %w", err)
	}

	// Every contender is started once and loaded in turn, round after
	// round: a disturbance of the machine during one run shows in one of
	// a contender's rounds, not in its result, which is its median round.
	type contender struct {
		name, addr string
		rounds     []result
		err        error
	}
	var cs []*contender
	add := func(name string, start func(port int) (*exec.Cmd, error)) {
		c := &contender{name: name}
		cs = append(cs, c)
		if start == nil {
			c.addr = backendAddr
			return
		}
		port := freePort()
		c.addr = fmt.Sprintf("127.0.0.1:%d", port)
		if _, c.err = start(port); c.err == nil {
			c.err = waitListening(c.addr)
		}
	}
	if want("direct") {
		add("direct", nil)
	}
	if want("sluice") {
		add("sluice", func(port int) (*exec.Cmd, error) { return startSluice(dir, port, backendAddr) })
	}
	if want("nginx") {
		add("nginx", func(port int) (*exec.Cmd, error) {
			return startNginx(filepath.Join(dir, "nginx"), nginxProxyConf(port, backendAddr), *proxyCPU)
		})
	}
	if want("haproxy") {
		add("haproxy", func(port int) (*exec.Cmd, error) { return startHAProxy(dir, port, backendAddr) })
	}
	// Every other round takes the contenders in reverse (ABBA), so that no
	// one always follows the same other, and a drift steady over two
	// rounds hits each pair alike.
	for i := range *rounds {
		order := slices.Clone(cs)
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, c := range order {
			if c.err != nil {
				continue
			}
			r := result{name: c.name}
			if r.rps, r.p99, r.err = load(c.addr); r.err != nil {
				c.err = r.err
				continue
			}
			c.rounds = append(c.rounds, r)
			fmt.Printf("round%d %s %.0f %.2fms\n", i+1, r.name, r.rps, float64(r.p99)/float64(time.Millisecond))
		}
	}
	var sluice *contender
	for _, c := range cs {
		if c.name == "sluice" && c.err == nil {
			sluice = c
		}
	}
	for _, c := range cs {
		if sluice == nil || c == sluice || c.err != nil || c.name == "direct" {
			continue
		}
		var ratios []float64
		for i := range *rounds {
			a, b, err := loadTogether(sluice.addr, c.addr)
			if err != nil {
				fmt.Fprintf(os.Stderr, "l7bench: shared core, sluice and %s: %v\n", c.name, err)
				break
			}
			ratios = append(ratios, a/b)
			fmt.Printf("shared%d sluice/%s %.3f %.0f %.0f\n", i+1, c.name, a/b, a, b)
		}
		if len(ratios) > 0 {
			slices.Sort(ratios)
			fmt.Printf("shared sluice/%s %.3f\n", c.name, ratios[len(ratios)/2])
		}
	}
	var results []result
	for _, c := range cs {
		r := result{name: c.name, err: c.err, rounds: c.rounds}
		if r.err == nil {
			r.rps, r.p99 = median(c.rounds)
		}
		results = append(results, r)
		report(r)
	}
	ratios(results)
	return nil
}

// median returns the median requests per second and the median p99 of the
// rounds (each taken on its own).
func median(rounds []result) (float64, time.Duration) {
	rps := make([]float64, len(rounds))
	p99 := make([]time.Duration, len(rounds))
	for i, r := range rounds {
		rps[i], p99[i] = r.rps, r.p99
	}
	slices.Sort(rps)
	slices.Sort(p99)
	return rps[len(rps)/2], p99[len(p99)/2]
}

func report(r result) {
	if r.err != nil {
		fmt.Printf("%s not-measured\n", r.name)
		fmt.Fprintf(os.Stderr, "l7bench: %s: %v\n", r.name, r.err)
		return
	}
	fmt.Printf("%s %.0f %.2fms\n", r.name, r.rps, float64(r.p99)/float64(time.Millisecond))
}

func ratios(results []result) {
	var ref *result
	for i := range results {
		if results[i].name == "nginx" && results[i].err == nil {
			ref = &results[i]
		}
	}
	if ref == nil {
		return
	}
	fmt.Println()
	fmt.Printf("relative to nginx (%.0f req/s, p99 %v): the median of the rounds' own ratios, then the medians' ratio\n",
		ref.rps, ref.p99.Round(10*time.Microsecond))
	for _, r := range results {
		if r.err != nil || r.name == "nginx" {
			continue
		}
		rps, p99 := paired(r.rounds, ref.rounds)
		fmt.Printf("paired %s/nginx %.3f %.3f\n", r.name, rps, p99)
		fmt.Printf("  %-8s %.2f× req/s, p99 %.2f×; medians %.2f×, %.2f× (%v)\n", r.name, rps, p99, r.rps/ref.rps,
			float64(r.p99)/float64(ref.p99), r.p99.Round(10*time.Microsecond))
	}
	// And Sluice against each other proxy, the same way.
	i := slices.IndexFunc(results, func(r result) bool { return r.name == "sluice" && r.err == nil })
	if i < 0 {
		return
	}
	for _, b := range results {
		if b.err == nil && b.name != "sluice" && b.name != "nginx" && b.name != "direct" {
			rps, p99 := paired(results[i].rounds, b.rounds)
			fmt.Printf("paired sluice/%s %.3f %.3f\n", b.name, rps, p99)
		}
	}
}

// paired returns the medians of the per-round ratios of a's rounds to b's,
// requests per second and p99. A round's contenders run back to back, so
// the machine's drift, which moves a contender by up to 30% between rounds
// minutes apart, mostly cancels within a round's ratio; the ratio of two
// medians keeps it.
func paired(a, b []result) (rps, p99 float64) {
	n := min(len(a), len(b))
	if n == 0 {
		return 0, 0
	}
	r, p := make([]float64, n), make([]float64, n)
	for i := range n {
		r[i], p[i] = a[i].rps/b[i].rps, float64(a[i].p99)/float64(b[i].p99)
	}
	slices.Sort(r)
	slices.Sort(p)
	return r[n/2], p[n/2]
}

// load runs wrk on the load CPU: a warm-up, then the measured run.
func load(addr string) (float64, time.Duration, error) {
	url := "http://" + addr + "/"
	if *warmup > 0 {
		if _, err := wrk(url, *warmup); err != nil {
			return 0, 0, err
		}
	}
	out, err := wrk(url, *duration)
	if err != nil {
		return 0, 0, err
	}
	if *spread {
		fmt.Print(latencyRE.FindString(out))
	}
	return parseWrk(out)
}

// loadTogether runs two wrk at once on the load CPU, half the connections
// each, against a and b, and returns their requests per second.
func loadTogether(a, b string) (float64, float64, error) {
	half := max(*conns/2, 1)
	var outs [2]string
	var errs [2]error
	var wg sync.WaitGroup
	for i, addr := range []string{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = wrkWith("http://"+addr+"/", *duration, half)
		}()
	}
	wg.Wait()
	var rps [2]float64
	for i := range outs {
		if errs[i] != nil {
			return 0, 0, errs[i]
		}
		var err error
		if rps[i], _, err = parseWrk(outs[i]); err != nil {
			return 0, 0, err
		}
	}
	return rps[0], rps[1], nil
}

func wrk(url string, d time.Duration) (string, error) { return wrkWith(url, d, *conns) }

func wrkWith(url string, d time.Duration, conns int) (string, error) {
	secs := int(d.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	cmd := exec.Command("taskset", "-c", strconv.Itoa(*loadCPU), "wrk", "-t1",
		"-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(secs)+"s", "--latency", url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("wrk: %w: %s", err, out)
	}
	return string(out), nil
}

var (
	rpsRE     = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	latencyRE = regexp.MustCompile(`(?m)^\s+50%.*\n(\s+\d+%.*\n)*`)
	p99RE     = regexp.MustCompile(`(?m)^\s+99%\s+([0-9.]+)(us|ms|s)\b`)
	errRE     = regexp.MustCompile(`(?m)^\s+Non-2xx or 3xx responses: (\d+)|^\s+Socket errors: .*`)
)

// parseWrk returns requests/s and the p99 latency of wrk --latency output;
// non-2xx answers or socket errors make the run not count.
func parseWrk(out string) (float64, time.Duration, error) {
	if m := errRE.FindString(out); m != "" {
		return 0, 0, fmt.Errorf("wrk saw errors: %s", strings.TrimSpace(m))
	}
	m := rpsRE.FindStringSubmatch(out)
	l := p99RE.FindStringSubmatch(out)
	if m == nil || l == nil {
		return 0, 0, fmt.Errorf("wrk output not understood:\n%s", out)
	}
	rps, _ := strconv.ParseFloat(m[1], 64)
	v, _ := strconv.ParseFloat(l[1], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[l[2]]
	return rps, time.Duration(v * float64(unit)), nil
}

func nginxBackendConf(port int) string {
	return fmt.Sprintf(`worker_processes 1;
daemon off;
user root;
pid %%DIR%%/nginx.pid;
error_log %%DIR%%/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	%%TEMP%%
	keepalive_requests 100000000;
	keepalive_timeout 75s;
	server {
		listen 127.0.0.1:%d backlog=4096;
		location / { default_type text/plain; return 200 "ok"; }
	}
}
`, port)
}

func nginxProxyConf(port int, backend string) string {
	return fmt.Sprintf(`worker_processes 1;
daemon off;
user root;
pid %%DIR%%/nginx.pid;
error_log %%DIR%%/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	%%TEMP%%
	keepalive_requests 100000000;
	keepalive_timeout 75s;
	upstream backend {
		server %s;
		keepalive 64;
		keepalive_requests 100000000;
	}
	server {
		listen 127.0.0.1:%d backlog=4096;
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $http_host;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Host $http_host;
			proxy_set_header X-Forwarded-Proto $scheme;
			proxy_set_header Forwarded "for=$remote_addr;proto=$scheme;host=\"$http_host\"";
		}
	}
}
`, backend, port)
}

// startNginx runs nginx in the foreground (daemon off) from its own
// directory, pinned to cpu; its worker inherits the affinity.
func startNginx(dir, conf string, cpu int) (*exec.Cmd, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var temp strings.Builder
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temp, "%s_temp_path %s/%s;\n\t", t, dir, t)
	}
	conf = strings.ReplaceAll(conf, "%DIR%", dir)
	conf = strings.ReplaceAll(conf, "%TEMP%", temp.String())
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return start(dir, "taskset", "-c", strconv.Itoa(cpu), "nginx", "-p", dir, "-c", path)
}

func startHAProxy(dir string, port int, backend string) (*exec.Cmd, error) {
	conf := fmt.Sprintf(`global
	nbthread 1
	maxconn 4096
defaults
	mode http
	option http-keep-alive
	http-reuse always
	timeout connect 5s
	timeout client 60s
	timeout server 60s
frontend web
	bind 127.0.0.1:%d
	default_backend backend
backend backend
	option forwardfor
	http-request set-header X-Forwarded-Host %%[req.hdr(host)]
	http-request set-header X-Forwarded-Proto http
	http-request set-header Forwarded "for=%%[src];proto=http;host=\"%%[req.hdr(host)]\""
	server s1 %s
`, port, backend)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return start(dir, "taskset", "-c", strconv.Itoa(*proxyCPU), "haproxy", "-db", "-f", path)
}

// startSluice builds scripts/l7bench/sluiceproxy and runs it with
// GOMAXPROCS=1 on the proxy CPU.
func startSluice(dir string, port int, backend string) (*exec.Cmd, error) {
	bin := filepath.Join(dir, "sluiceproxy")
	build := exec.Command("go", "build", "-o", bin, "./scripts/l7bench/sluiceproxy")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build sluiceproxy: %w: %s", err, out)
	}
	args := []string{"-c", strconv.Itoa(*proxyCPU), bin,
		"-listen", fmt.Sprintf("127.0.0.1:%d", port), "-backend", backend}
	if *profile != "" {
		p, err := filepath.Abs(*profile)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, err
		}
		args = append(args, "-cpuprofile", filepath.Join(p, "cpu.pprof"), "-memprofile", filepath.Join(p, "mem.pprof"))
	}
	cmd := exec.Command("taskset", args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	return startCmd(dir, cmd)
}

var (
	mu      sync.Mutex
	running []*exec.Cmd
)

func start(dir, name string, args ...string) (*exec.Cmd, error) {
	return startCmd(dir, exec.Command(name, args...))
}

// startCmd starts cmd in its own process group, its output in dir, and
// remembers it for stopAll.
func startCmd(dir string, cmd *exec.Cmd) (*exec.Cmd, error) {
	logf, err := os.Create(filepath.Join(dir, filepath.Base(cmd.Args[len(cmd.Args)-1])+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	mu.Lock()
	defer mu.Unlock()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", strings.Join(cmd.Args, " "), err)
	}
	running = append(running, cmd)
	return cmd, nil
}

// stop ends cmd's process group: SIGTERM, then SIGKILL after 5s.
func stop(cmd *exec.Cmd) {
	mu.Lock()
	for i, c := range running {
		if c == cmd {
			running = append(running[:i], running[i+1:]...)
			break
		}
	}
	mu.Unlock()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func stopAll() {
	mu.Lock()
	cmds := append([]*exec.Cmd(nil), running...)
	mu.Unlock()
	for i := len(cmds) - 1; i >= 0; i-- {
		stop(cmds[i])
	}
}

// freePort returns a loopback port nothing listens on now.
func freePort() int {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitListening(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp4", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("nothing listening on " + addr + " after 10s")
}
