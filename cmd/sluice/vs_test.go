package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicelb/sluice/mgmt/client"
)

const siteVS = `{"name":"site","service":"web","hosts":["www.example.com"],
	"locations":[{"name":"api","match":"prefix","path":"/api/","upstream":"api","tries":2,"read_timeout":"30s"},
		{"name":"root","path":"/","upstream":"app"}],"version":4}`

func sentVServer(t *testing.T, r seenReq) client.VServer {
	t.Helper()
	var v client.VServer
	if err := json.Unmarshal([]byte(r.Body), &v); err != nil {
		t.Fatalf("sent %q: %v", r.Body, err)
	}
	return v
}

func TestVsSetKeepsTheLocationsAndTheirVersion(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{
		"GET /v1/vservers/site": {body: siteVS},
		"PUT /v1/vservers/site": {body: `{"name":"site","service":"web2","hosts":["a.example.com","*.b.example.com"],"tls":true,
			"locations":[{"name":"api","match":"prefix","path":"/api/","upstream":"api","tries":2,"read_timeout":"30s"},
			{"name":"root","path":"/","upstream":"app"}],"version":5}`},
	})
	r := f.run("vs", "set", "site", "--service", "web2", "--host", "a.example.com", "--host", "*.b.example.com", "--tls")
	wantStdout(t, r, `name     site
service  web2
hosts    a.example.com,*.b.example.com
tls      yes
version  5

LOCATION  MATCH   PATH   UPSTREAM  TRIES  CONNECT TIMEOUT  READ TIMEOUT  RETRY NON-IDEMPOTENT
api       prefix  /api/  api       2      -                30s           no
root      prefix  /      app       -      -                -             no
`)
	reqs := f.requests()
	if len(reqs) != 2 || reqs[0].Method != "GET" || reqs[1].Method != "PUT" {
		t.Fatalf("requests %+v, want GET then PUT", reqs)
	}
	got := sentVServer(t, reqs[1])
	want := client.VServer{Name: "site", Service: "web2", Hosts: []string{"a.example.com", "*.b.example.com"}, TLS: true,
		Locations: []client.Location{{Name: "api", Match: "prefix", Path: "/api/", Upstream: "api", Tries: 2, ReadTimeout: client.Duration(30 * time.Second)},
			{Name: "root", Path: "/", Upstream: "app"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sent %+v\nwant %+v", got, want)
	}
	if im := reqs[1].Header.Get("If-Match"); im != `"4"` {
		t.Errorf("If-Match %q, want the version read, \"4\"", im)
	}
}

func TestVsSetCreatesAMissingOne(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{
		"PUT /v1/vservers/new": {body: `{"name":"new","service":"web","locations":[],"version":1}`},
	})
	wantStdout(t, f.run("vs", "set", "new", "--service", "web"), `name     new
service  web
hosts    (default)
tls      no
version  1

no locations
`)
	req := f.last(t)
	if req.Method != "PUT" || req.Header.Get("If-Match") != "" || req.Body != `{"name":"new","service":"web","locations":[]}` {
		t.Errorf("sent %s %s If-Match %q", req.Method, req.Body, req.Header.Get("If-Match"))
	}
}

func TestVsSetGivenIfMatchWins(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{
		"GET /v1/vservers/site": {body: siteVS},
		"PUT /v1/vservers/site": {status: 412, body: `{"error":{"code":"version_mismatch","message":"version is 4"}}`},
	})
	r := f.run("vs", "set", "site", "--service", "web", "--if-match", "3")
	if r.code != 1 || r.stderr != "sluice: 412 version_mismatch: version is 4\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if im := f.last(t).Header.Get("If-Match"); im != `"3"` {
		t.Errorf("If-Match %q, want \"3\"", im)
	}
}

func TestVsListShowDel(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{
		"GET /v1/vservers":         {body: `{"vservers":[` + siteVS + `,{"name":"tls","service":"secure","tls":true,"locations":[],"version":1}]}`},
		"GET /v1/vservers/site":    {body: siteVS},
		"DELETE /v1/vservers/site": {status: 204},
	})
	wantStdout(t, f.run("vs", "list"), `NAME  SERVICE  HOSTS            TLS  LOCATIONS  VERSION
site  web      www.example.com  no   2          4
tls   secure   (default)        yes  0          1
`)
	r := f.run("vs", "show", "site", "-o", "json")
	wantOK(t, r)
	sameJSON(t, r.stdout, siteVS)
	wantStdout(t, f.run("vs", "del", "site", "--if-match", "4"), "")
	if req := f.last(t); req.Method != "DELETE" || req.Header.Get("If-Match") != `"4"` {
		t.Errorf("vs del sent %s If-Match %q", req.Method, req.Header.Get("If-Match"))
	}
}

func TestVsListEmptyIsAnEmptyJSONList(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/vservers": {body: `{"vservers":[]}`}})
	wantStdout(t, f.run("vs", "list", "-o", "json"), "[]\n")
}

func TestLocationSetSendsEveryFlag(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"PUT /v1/vservers/site/locations/img": {body: siteVS}})
	wantOK(t, f.run("location", "set", "site", "img", "--path", `^/img/.*\.png$`, "--match", "regex", "--upstream", "static",
		"--connect-timeout", "1500ms", "--read-timeout", "2m", "--tries", "5", "--retry-non-idempotent"))
	req := f.last(t)
	var got client.Location
	if err := json.Unmarshal([]byte(req.Body), &got); err != nil {
		t.Fatal(err)
	}
	want := client.Location{Name: "img", Match: "regex", Path: `^/img/.*\.png$`, Upstream: "static",
		ConnectTimeout: client.Duration(1500 * time.Millisecond), ReadTimeout: client.Duration(2 * time.Minute), Tries: 5, RetryNonIdempotent: true}
	if req.Method != "PUT" || got != want {
		t.Errorf("sent %s %s, want %+v", req.Method, req.Body, want)
	}

	wantOK(t, f.run("location", "set", "site", "img", "--path", "/img/", "--upstream", "static"))
	if body := f.last(t).Body; body != `{"name":"img","match":"prefix","path":"/img/","upstream":"static"}` {
		t.Errorf("with defaults sent %s", body)
	}
}

func TestLocationDel(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"DELETE /v1/vservers/site/locations/api": {body: `{"name":"site","service":"web","locations":[],"version":6}`}})
	wantStdout(t, f.run("location", "del", "site", "api"), "name     site\nservice  web\nhosts    (default)\ntls      no\nversion  6\n\nno locations\n")
}

func TestL7UsageErrors(t *testing.T) {
	f := newFakeAPI(t, nil)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"vs", "set", "--service", "web"}, "vs set: wrong number of arguments (want NAME)"},
		{[]string{"vs", "show", "a", "b"}, "vs show: wrong number of arguments (want NAME)"},
		{[]string{"location", "set", "site", "--path", "/", "--upstream", "app"}, "location set: wrong number of arguments (want VS NAME)"},
		{[]string{"location", "set", "site", "root", "--path", "/", "--upstream", "app", "--match", "glob"}, `--match "glob": want exact, prefix or regex`},
		{[]string{"location", "set", "site", "root", "--path", "/", "--upstream", "app", "--tries", "-1"}, "location set: --tries -1: want 1 or more"},
		{[]string{"location", "set", "site", "root", "--path", "/", "--upstream", "app", "--read-timeout", "-1s"}, "location set: --read-timeout -1s: must not be negative"},
		{[]string{"location", "del", "site"}, "location del: wrong number of arguments (want VS NAME)"},
		{[]string{"upstream", "set", "app", "--server", "10.0.0.1"}, `upstream set: --server "10.0.0.1": address "10.0.0.1": want HOST:PORT`},
		{[]string{"upstream", "set", "app", "--balancer", "fastest"}, `upstream set: --balancer "fastest": want round_robin, least_conn, hash, random`},
		{[]string{"upstream", "set", "app", "--hash-key", "uri"}, "upstream set: --hash-key needs --balancer hash"},
		{[]string{"upstream", "set", "app", "--balancer", "hash", "--hash-key", "header:"}, `upstream set: --hash-key "header:": want client_ip, uri, header:NAME or cookie:NAME`},
		{[]string{"upstream", "set", "app", "--tls-skip-verify"}, "upstream set: --tls-skip-verify needs --tls tls or --tls tlcp"},
		{[]string{"upstream", "set", "app", "--tls", "ssl"}, `upstream set: --tls "ssl": want tls or tlcp`},
		{[]string{"upstream", "set", "app", "--tls", "tls", "--tls-cert", "c.pem"}, "upstream set: --tls-cert and --tls-key go together"},
		{[]string{"upstream", "set", "app", "--tls", "tls", "--tls-enc-cert", "e.pem", "--tls-enc-key", "e.key"}, "upstream set: --tls-enc-cert and --tls-enc-key are for --tls tlcp"},
		{[]string{"upstream", "set", "app", "--keepalive", "-1"}, "upstream set: --keepalive -1: must not be negative"},
		{[]string{"upstream", "server", "add", "app"}, "upstream server add: wrong number of arguments (want NAME ADDR)"},
		{[]string{"upstream", "server", "add", "app", "nohost"}, `upstream server add: address "nohost": want HOST:PORT`},
		{[]string{"upstream", "server", "add", "app", "10.0.0.1:99999"}, `upstream server add: address "10.0.0.1:99999": port "99999": want 1-65535`},
		{[]string{"upstream", "server", "add", "app", "10.0.0.1:80", "--weight", "-2"}, "upstream server add: --weight -2: must not be negative"},
		{[]string{"upstream", "server", "set", "app", "1"}, "upstream server set: give --addr, --weight, --max-fails, --fail-timeout, --down, --up, --backup or --no-backup"},
		{[]string{"upstream", "server", "set", "app", "1", "--down", "--up"}, "upstream server set: --down and --up exclude each other"},
		{[]string{"upstream", "server", "set", "app", "1", "--backup", "--no-backup"}, "upstream server set: --backup and --no-backup exclude each other"},
		{[]string{"upstream", "server", "set", "app", "1", "--weight", "0"}, "upstream server set: --weight 0: want 1 or more"},
		{[]string{"upstream", "server", "set", "app", "1", "--max-fails", "-2"}, "upstream server set: --max-fails -2: want -1 (off) or a count"},
		{[]string{"upstream", "server", "add", "app", "10.0.0.1:80", "--max-fails", "-3"}, "upstream server add: --max-fails -3: want -1 (off) or a count"},
		{[]string{"upstream", "server", "set", "app", "1", "--addr", "x"}, `upstream server set: --addr: address "x": want HOST:PORT`},
		{[]string{"upstream", "server", "set", "app", "one", "--down"}, `upstream server set: server id "one": want a positive integer`},
		{[]string{"upstream", "server", "del", "app", "0"}, `upstream server del: server id "0": want a positive integer`},
		{[]string{"upstream", "reset-stats"}, "upstream reset-stats: wrong number of arguments (want NAME)"},
		{[]string{"cert", "set", "site"}, "cert set: --kind tls needs --cert, --key"},
		{[]string{"cert", "set", "site", "--kind", "tlcp", "--sign-cert", "s", "--sign-key", "k"}, "cert set: --kind tlcp needs --enc-cert, --enc-key"},
		{[]string{"cert", "set", "site", "--kind", "tlcp", "--cert", "c"}, "cert set: --cert is not for --kind tlcp"},
		{[]string{"cert", "set", "site", "--cert", "c", "--key", "k", "--enc-key", "e"}, "cert set: --enc-key is not for --kind tls"},
		{[]string{"cert", "set", "site", "--kind", "x509"}, `cert set: --kind "x509": want tls or tlcp`},
		{[]string{"log", "set", "--path", "/var/log/a", "--syslog", "udp://h:514"}, "log set: --path and --syslog exclude each other"},
		{[]string{"log", "set", "--format", "xml"}, `log set: --format "xml": want combined, json or template`},
		{[]string{"log", "set", "--format", "json", "--template", "$status"}, "log set: --template needs --format template"},
		{[]string{"log", "set", "--buffer", "-1"}, "log set: --buffer -1: must not be negative"},
		{[]string{"log", "show", "extra"}, "log show: wrong number of arguments (want )"},
		{[]string{"stats", "--l7", "extra"}, "stats: wrong number of arguments (want )"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			wantUsageError(t, f.run(tc.args...), tc.msg)
		})
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("usage errors sent %d requests to the API", n)
	}
}
