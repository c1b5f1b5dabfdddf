package main

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicelb/sluice/mgmt/client"
)

func TestParseServer(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want client.Server
	}{
		{"10.1.0.11:8080", client.Server{Addr: "10.1.0.11:8080"}},
		{"[2001:db8::11]:443,weight=5", client.Server{Addr: "[2001:db8::11]:443", Weight: 5}},
		{"app.internal:80, weight=3, max_fails=2, fail_timeout=30s, backup, down, id=7",
			client.Server{ID: 7, Addr: "app.internal:80", Weight: 3, MaxFails: 2, FailTimeout: client.Duration(30 * time.Second), Backup: true, Down: true}},
		{"10.1.0.11:8080,max_fails=0,fail_timeout=1m30s", client.Server{Addr: "10.1.0.11:8080", FailTimeout: client.Duration(90 * time.Second)}},
		{"10.1.0.11:8080,max_fails=-1", client.Server{Addr: "10.1.0.11:8080", MaxFails: -1}},
	} {
		got, err := parseServer(tc.spec)
		if err != nil || got != tc.want {
			t.Errorf("parseServer(%q) = %+v, %v; want %+v", tc.spec, got, err, tc.want)
		}
	}
	for spec, msg := range map[string]string{
		"":                                  `address "": want HOST:PORT`,
		"10.1.0.11":                         `address "10.1.0.11": want HOST:PORT`,
		":8080":                             `address ":8080": want HOST:PORT`,
		"10.1.0.11:http":                    `address "10.1.0.11:http": port "http": want 1-65535`,
		"10.1.0.11:0":                       `address "10.1.0.11:0": port "0": want 1-65535`,
		"10.1.0.11:80,weight=-1":            `weight "-1": want 0 or more`,
		"10.1.0.11:80,weight=heavy":         `weight "heavy": want 0 or more`,
		"10.1.0.11:80,max_fails=":           `max_fails "": want -1 (off) or a count`,
		"10.1.0.11:80,max_fails=-2":         `max_fails "-2": want -1 (off) or a count`,
		"10.1.0.11:80,fail_timeout=10":      `fail_timeout "10": want a duration like 10s`,
		"10.1.0.11:80,fail_timeout=-5s":     `fail_timeout "-5s": want a duration like 10s`,
		"10.1.0.11:80,id=0":                 `id "0": want a positive integer`,
		"10.1.0.11:80,backup=yes":           "backup takes no value",
		"10.1.0.11:80,down=1":               "down takes no value",
		"10.1.0.11:80,colour=red":           `unknown option "colour": want weight=N, max_fails=N, fail_timeout=D, backup, down or id=N`,
		"10.1.0.11:80,weight=1,,backup":     `unknown option "": want weight=N, max_fails=N, fail_timeout=D, backup, down or id=N`,
		"10.1.0.11:80 10.1.0.12:80":         `address "10.1.0.11:80 10.1.0.12:80": want HOST:PORT`,
		"10.1.0.11:80,weight=2;max_fails=1": `weight "2;max_fails=1": want 0 or more`,
	} {
		if _, err := parseServer(spec); err == nil || err.Error() != msg {
			t.Errorf("parseServer(%q) error = %v, want %q", spec, err, msg)
		}
	}
}

func TestUpstreamSetSendsTheUpstream(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"ca.pem": "CA PEM\n", "sign.pem": "SIGN PEM\n", "sign.key": "SIGN KEY\n", "enc.pem": "ENC PEM\n", "enc.key": "ENC KEY\n"}
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	f := newFakeAPI(t, map[string]canned{"PUT /v1/upstreams/app": {body: appUpstream}})
	r := f.run("upstream", "set", "app", "--balancer", "hash", "--hash-key", "cookie:sid",
		"--server", "10.1.0.11:8080,weight=5,max_fails=3,fail_timeout=10s", "--server", "10.1.0.12:8080,backup,down",
		"--keepalive", "16", "--connect-timeout", "3s", "--read-timeout", "30s", "--write-timeout", "20s",
		"--tls", "tlcp", "--tls-server-name", "app.internal", "--tls-ca", filepath.Join(dir, "ca.pem"), "--tls-skip-verify",
		"--tls-cert", filepath.Join(dir, "sign.pem"), "--tls-key", filepath.Join(dir, "sign.key"),
		"--tls-enc-cert", filepath.Join(dir, "enc.pem"), "--tls-enc-key", filepath.Join(dir, "enc.key"), "--if-match", "6")
	wantOK(t, r)
	req := f.last(t)
	var got client.Upstream
	if err := json.Unmarshal([]byte(req.Body), &got); err != nil {
		t.Fatal(err)
	}
	want := client.Upstream{Name: "app", Balancer: "hash", HashKey: "cookie:sid", KeepAlive: 16,
		ConnectTimeout: client.Duration(3 * time.Second), ReadTimeout: client.Duration(30 * time.Second), WriteTimeout: client.Duration(20 * time.Second),
		Servers: []client.Server{{Addr: "10.1.0.11:8080", Weight: 5, MaxFails: 3, FailTimeout: client.Duration(10 * time.Second)},
			{Addr: "10.1.0.12:8080", Backup: true, Down: true}},
		TLS: &client.UpstreamTLS{Mode: "tlcp", ServerName: "app.internal", CA: "CA PEM\n", SkipVerify: true,
			Cert: "SIGN PEM\n", Key: "SIGN KEY\n", EncCert: "ENC PEM\n", EncKey: "ENC KEY\n"}}
	if req.Method != "PUT" || req.Header.Get("If-Match") != `"6"` || !reflect.DeepEqual(got, want) {
		t.Errorf("sent %s If-Match %q %+v\nwant %+v", req.Method, req.Header.Get("If-Match"), got, want)
	}

	// Without flags: just the servers, as a plain upstream.
	wantOK(t, f.run("upstream", "set", "app", "--server", "10.1.0.11:8080"))
	if body := f.last(t).Body; body != `{"name":"app","servers":[{"addr":"10.1.0.11:8080"}]}` {
		t.Errorf("a plain upstream sent %s", body)
	}
}

func TestUpstreamSetUnreadableFile(t *testing.T) {
	f := newFakeAPI(t, nil)
	missing := filepath.Join(t.TempDir(), "none.pem")
	r := f.run("upstream", "set", "app", "--tls", "tls", "--tls-ca", missing)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "sluice: read --tls-ca: open "+missing+": no such file") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

const appUpstream = `{"name":"app","balancer":"hash","hash_key":"cookie:sid","keepalive":16,"connect_timeout":"3s",
	"tls":{"mode":"tls","server_name":"app.internal","skip_verify":true},
	"servers":[{"id":1,"addr":"10.1.0.11:8080","weight":5,"max_fails":3,"fail_timeout":"10s","active":2,"available":true},
		{"id":2,"addr":"10.1.0.12:8080","backup":true,"active":0,"available":true},
		{"id":3,"addr":"10.1.0.13:8080","active":0,"available":false},
		{"id":4,"addr":"10.1.0.14:8080","max_fails":-1,"down":true,"active":1,"available":false}],
	"version":7}`

func TestUpstreamShowTable(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/upstreams/app": {body: appUpstream}})
	wantStdout(t, f.run("upstream", "show", "app"), `name             app
balancer         hash cookie:sid
keepalive        16
connect timeout  3s
read timeout     1m0s
write timeout    1m0s
tls              tls, server name app.internal, no verification
version          7

ID  ADDR            WEIGHT  MAX FAILS  FAIL TIMEOUT  ROLE     STATE   ACTIVE
1   10.1.0.11:8080  5       3          10s           primary  up      2
2   10.1.0.12:8080  1       1          10s           backup   up      0
3   10.1.0.13:8080  1       1          10s           primary  failed  0
4   10.1.0.14:8080  1       off        10s           primary  down    1
`)
	r := f.run("upstream", "show", "app", "-o", "json")
	wantOK(t, r)
	sameJSON(t, r.stdout, appUpstream)
}

func TestUpstreamList(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/upstreams": {body: `{"upstreams":[` + appUpstream +
		`,{"name":"static","servers":[{"id":1,"addr":"10.2.0.1:80","active":0,"available":true}],"version":1}]}`}})
	wantStdout(t, f.run("upstream", "list"), `NAME    BALANCER         SERVERS  TLS  VERSION
app     hash cookie:sid  2/4      tls  7
static  round_robin      1/1      -    1
`)
}

func TestUpstreamServerAddPrintsTheID(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"POST /v1/upstreams/app/servers": {status: 201,
		body: `{"id":5,"addr":"10.1.0.15:8080","weight":2,"max_fails":1,"fail_timeout":"5s","backup":true,"active":0,"available":true}`}})
	r := f.run("upstream", "server", "add", "app", "10.1.0.15:8080", "--weight", "2", "--max-fails", "1", "--fail-timeout", "5s", "--backup", "-o", "json")
	wantOK(t, r)
	var sv struct {
		ID int `json:"id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &sv); err != nil || sv.ID != 5 {
		t.Errorf("server add -o json printed %q (%v), want id 5", r.stdout, err)
	}
	req := f.last(t)
	if req.Method != "POST" || req.Body != `{"addr":"10.1.0.15:8080","weight":2,"max_fails":1,"fail_timeout":"5s","backup":true}` {
		t.Errorf("sent %s %s", req.Method, req.Body)
	}
	wantStdout(t, f.run("upstream", "server", "add", "app", "10.1.0.15:8080"), `ID  ADDR            WEIGHT  MAX FAILS  FAIL TIMEOUT  ROLE    STATE  ACTIVE
5   10.1.0.15:8080  2       1          5s            backup  up     0
`)
}

func TestUpstreamServerSetPatchesWhatIsGiven(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"PATCH /v1/upstreams/app/servers/3": {body: `{"id":3,"addr":"10.1.0.13:8080","weight":0,"down":true,"active":0,"available":false}`}})
	for _, tc := range []struct {
		args []string
		body string
	}{
		{[]string{"--down"}, `{"down":true}`},
		{[]string{"--up"}, `{"down":false}`},
		{[]string{"--backup"}, `{"backup":true}`},
		{[]string{"--no-backup", "--up"}, `{"backup":false,"down":false}`},
		{[]string{"--weight", "3"}, `{"weight":3}`},
		{[]string{"--max-fails", "-1"}, `{"max_fails":-1}`},
		{[]string{"--max-fails", "4", "--fail-timeout", "1m"}, `{"max_fails":4,"fail_timeout":"1m0s"}`},
		{[]string{"--addr", "[2001:db8::13]:8080"}, `{"addr":"[2001:db8::13]:8080"}`},
	} {
		wantOK(t, f.run(append([]string{"upstream", "server", "set", "app", "3"}, tc.args...)...))
		if req := f.last(t); req.Method != "PATCH" || req.Body != tc.body {
			t.Errorf("server set %v sent %s %s, want %s", tc.args, req.Method, req.Body, tc.body)
		}
	}
}

func TestUpstreamServerDelListShowAndResetStats(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{
		"DELETE /v1/upstreams/app/servers/2": {status: 204},
		"DELETE /v1/upstreams/app/stats":     {status: 204},
		"DELETE /v1/upstreams/app":           {status: 409, body: `{"error":{"code":"conflict","message":"upstream \"app\" is used by site/root"}}`},
		"GET /v1/upstreams/app/servers":      {body: `[{"id":1,"addr":"10.1.0.11:8080","active":0,"available":true}]`},
		"GET /v1/upstreams/app/servers/1":    {body: `{"id":1,"addr":"10.1.0.11:8080","active":0,"available":true}`},
	})
	wantStdout(t, f.run("upstream", "server", "del", "app", "2"), "")
	if req := f.last(t); req.Method != "DELETE" || req.Path != "/v1/upstreams/app/servers/2" {
		t.Errorf("server del sent %s %s", req.Method, req.Path)
	}
	wantStdout(t, f.run("upstream", "reset-stats", "app"), "")
	if req := f.last(t); req.Method != "DELETE" || req.Path != "/v1/upstreams/app/stats" {
		t.Errorf("reset-stats sent %s %s", req.Method, req.Path)
	}
	table := "ID  ADDR            WEIGHT  MAX FAILS  FAIL TIMEOUT  ROLE     STATE  ACTIVE\n1   10.1.0.11:8080  1       1          10s           primary  up     0\n"
	wantStdout(t, f.run("upstream", "server", "list", "app"), table)
	wantStdout(t, f.run("upstream", "server", "show", "app", "1"), table)
	r := f.run("upstream", "del", "app")
	if r.code != 1 || r.stderr != "sluice: 409 conflict: upstream \"app\" is used by site/root\n" {
		t.Errorf("upstream del of one in use: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestFlagsMayFollowTheArgumentsOfL7Commands(t *testing.T) {
	app := newApp(nil, nil, nil)
	for _, tc := range []struct{ in, want string }{
		{"sluice location set site root --path / --upstream app", "sluice location set --path / --upstream app site root"},
		{"sluice upstream server add app 10.0.0.1:80 --backup -o json", "sluice upstream server add --backup -o json app 10.0.0.1:80"},
		{"sluice upstream set app --server 10.0.0.1:80,weight=2 --tls-skip-verify --tls tls", "sluice upstream set --server 10.0.0.1:80,weight=2 --tls-skip-verify --tls tls app"},
		{"sluice stats --l7 -o json", "sluice stats --l7 -o json"},
	} {
		if got := strings.Join(hoistFlags(app, strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("hoistFlags(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
