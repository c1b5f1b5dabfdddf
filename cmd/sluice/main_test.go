package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/sluicelb/sluice/mgmt"
)

// canned is a fake API answer.
type canned struct {
	status int
	body   string
	header map[string]string
}

// seenReq is what the fake API saw of one request.
type seenReq struct {
	Method, Path, Query string
	Header              http.Header
	Body                string
	Chunked             bool
}

// fakeAPI answers "METHOD /path" with canned answers and records requests;
// a route it does not know gets 404 not_found in the API's envelope.
type fakeAPI struct {
	url    string
	routes map[string]canned
	mu     sync.Mutex
	reqs   []seenReq
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, seenReq{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(b), r.ContentLength == -1})
	f.mu.Unlock()
	c, ok := f.routes[r.Method+" "+r.URL.Path]
	if !ok {
		c = canned{status: 404, body: `{"error":{"code":"not_found","message":"no route for ` + r.Method + " " + r.URL.Path + `"}}`}
	}
	for k, v := range c.header {
		w.Header().Set(k, v)
	}
	if c.status == 0 {
		c.status = 200
	}
	w.WriteHeader(c.status)
	io.WriteString(w, c.body)
}

// newFakeAPI serves routes over TCP. It clears $SLUICE_API and $SLUICE_TOKEN
// so the environment of the test run does not leak in.
func newFakeAPI(t *testing.T, routes map[string]canned) *fakeAPI {
	t.Helper()
	t.Setenv("SLUICE_API", "")
	t.Setenv("SLUICE_TOKEN", "")
	t.Setenv("SLUICE_TOKEN_FILE", "")
	f := &fakeAPI{routes: routes}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// newUnixFakeAPI serves routes on a unix socket and returns its unix:// address.
func newUnixFakeAPI(t *testing.T, routes map[string]canned) (*fakeAPI, string) {
	t.Helper()
	f := newFakeAPI(t, nil)
	f.routes = routes
	path := filepath.Join(t.TempDir(), "sluice.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return f, "unix://" + path
}

// requests returns the requests seen so far.
func (f *fakeAPI) requests() []seenReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenReq(nil), f.reqs...)
}

// last returns the last request seen; the test fails when there was none.
func (f *fakeAPI) last(t *testing.T) seenReq {
	t.Helper()
	r := f.requests()
	if len(r) == 0 {
		t.Fatal("the fake API saw no request")
	}
	return r[len(r)-1]
}

// result is what a user sees of one run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

// sluice runs the CLI in-process with stdin and args (without the program name).
func sluice(stdin string, args ...string) result {
	var out, errb bytes.Buffer
	code := run(append([]string{"sluice"}, args...), strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// run runs the CLI against the fake API.
func (f *fakeAPI) run(args ...string) result {
	return sluice("", append([]string{"--api", f.url}, args...)...)
}

// wantOK fails the test unless the run exited 0 with nothing on stderr.
func wantOK(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s\nstdout:\n%s", r.code, r.stderr, r.stdout)
	}
}

// wantStdout fails the test unless the run succeeded and printed want.
func wantStdout(t *testing.T, r result, want string) {
	t.Helper()
	wantOK(t, r)
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
}

// wantUsageError fails the test unless the run exited 1 with the message and
// the usage on stderr and nothing on stdout.
func wantUsageError(t *testing.T, r result, msg string) {
	t.Helper()
	if r.code != 1 || !strings.HasPrefix(r.stderr, "sluice: "+msg+"\n") || !strings.Contains(r.stderr, "USAGE:") || r.stdout != "" {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1, \"sluice: %s\" and the usage on stderr", r.code, r.stdout, r.stderr, msg)
	}
}

func TestVersionFlagPrintsTheVersion(t *testing.T) {
	wantStdout(t, sluice("", "--version"), "sluice version "+mgmt.Version+"\n")
}

func TestUsageErrors(t *testing.T) {
	f := newFakeAPI(t, nil)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"acl", "nope"}, `unknown command "nope"`},
		{[]string{"--bogus", "status"}, "flag provided but not defined: -bogus"},
		{[]string{"status", "-o", "yaml"}, `-o "yaml": want table or json`},
		{[]string{"status", "extra"}, "status: wrong number of arguments (want )"},
		{[]string{"acl", "show"}, "acl show: wrong number of arguments (want NAME)"},
		{[]string{"acl", "check", "1.2.3.4", "5.6.7.8"}, "acl check: wrong number of arguments (want IP)"},
		{[]string{"acl", "add", "bad", "--", "-o"}, `acl add: flags go before the arguments: "--"`},
		{[]string{"acl", "add", "bad"}, "acl add: wrong number of arguments (want NAME CIDR…)"},
		{[]string{"acl", "add", "--kind", "block", "bad", "10.0.0.0/8"}, `--kind "block": want deny or allow`},
		{[]string{"acl", "policy", "block"}, `acl policy "block": want deny or allow`},
		{[]string{"acl", "protect", "--clear", "10.0.0.0/8"}, "acl protect: --clear takes no prefixes"},
		{[]string{"acl", "set", "bad"}, "acl set: --file PATH or --file - is required"},
		{[]string{"completion", "fish"}, `completion "fish": want bash or zsh`},
		{[]string{"detach"}, "detach: name --iface IF (repeatable) or --all"},
		{[]string{"detach", "--all", "--iface", "eth0"}, "detach: --iface and --all exclude each other"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			wantUsageError(t, f.run(tc.args...), tc.msg)
		})
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("usage errors sent %d requests to the API", n)
	}
}

func TestNoArgumentsPrintsHelp(t *testing.T) {
	r := sluice("")
	wantOK(t, r)
	for _, cmd := range []string{"serve", "status", "stats", "detach", "acl", "completion", "--api value", "VERSION:\n   " + mgmt.Version} {
		if !strings.Contains(r.stdout, cmd) {
			t.Errorf("help does not mention %q:\n%s", cmd, r.stdout)
		}
	}
	if h := sluice("", "acl", "--help"); h.code != 0 || !strings.Contains(h.stdout, "sluice acl - IP lists") || !strings.Contains(h.stdout, "check") {
		t.Errorf("sluice acl --help: exit %d, stdout:\n%s", h.code, h.stdout)
	}
}

func TestUnreachableDaemonIsAnError(t *testing.T) {
	t.Setenv("SLUICE_TOKEN", "")
	api := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	r := sluice("", "--api", api, "status")
	want := "sluice: GET /v1/status at " + api + ": dial unix "
	if r.code != 1 || !strings.HasPrefix(r.stderr, want) || !strings.Contains(r.stderr, "no such file or directory") || r.stdout != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q…", r.code, r.stdout, r.stderr, want)
	}
}

func TestAPIAddressFromEnvironmentOverUnixSocket(t *testing.T) {
	f, api := newUnixFakeAPI(t, map[string]canned{"GET /v1/acl": {body: aclJSON}})
	t.Setenv("SLUICE_API", api)
	wantOK(t, sluice("", "acl", "policy"))
	if h := f.last(t).Header.Get("Authorization"); h != "" {
		t.Errorf("Authorization %q sent without a token", h)
	}
}

func TestTokenFromFileAndEnvironment(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/acl": {body: aclJSON}})
	t.Setenv("SLUICE_TOKEN", "from-env")
	wantOK(t, f.run("acl", "policy"))
	if h := f.last(t).Header.Get("Authorization"); h != "Bearer from-env" {
		t.Errorf("with $SLUICE_TOKEN: Authorization %q", h)
	}
	tf := filepath.Join(t.TempDir(), "token")
	writeFile(t, tf, "from-file\n")
	wantOK(t, sluice("", "--api", f.url, "--token-file", tf, "acl", "policy"))
	if h := f.last(t).Header.Get("Authorization"); h != "Bearer from-file" {
		t.Errorf("with --token-file: Authorization %q", h)
	}
	r := sluice("", "--api", f.url, "--token-file", tf+".missing", "acl", "policy")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "sluice: read token: open ") {
		t.Errorf("missing token file: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestUnauthorizedIsReported(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/status": {status: 401,
		body: `{"error":{"code":"unauthorized","message":"missing or wrong bearer token"}}`}})
	r := f.run("status")
	if r.code != 1 || r.stderr != "sluice: 401 unauthorized: missing or wrong bearer token\n" || r.stdout != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sameJSON fails the test unless got and want decode to equal values.
func sameJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("JSON output:\n%s\nwant the same as:\n%s", got, want)
	}
}

func TestFlagsMayFollowArguments(t *testing.T) {
	app := newApp(nil, nil, nil)
	for _, tc := range []struct{ in, want string }{
		{"sluice acl set blocked --kind deny --file list.txt", "sluice acl set --kind deny --file list.txt blocked"},
		{"sluice --api unix:///s acl show bad -o json", "sluice --api unix:///s acl show -o json bad"},
		{"sluice acl add bad 10.0.0.0/8 --kind=allow 10.1.0.0/16", "sluice acl add --kind=allow bad 10.0.0.0/8 10.1.0.0/16"},
		{"sluice acl protect --clear", "sluice acl protect --clear"},
		{"sluice detach --all", "sluice detach --all"},
		{"sluice acl set blocked -f - -o json", "sluice acl set -f - -o json blocked"},
		{"sluice acl add bad -- -x", "sluice acl add bad -- -x"},
	} {
		if got := strings.Join(hoistFlags(app, strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("hoistFlags(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
