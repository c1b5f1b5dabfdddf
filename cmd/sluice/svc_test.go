package main

import (
	"encoding/json"
	"testing"

	"github.com/sluicelb/sluice/l4"
)

const webService = `{"name":"web","vip":"203.0.113.10","port":443,"proto":"tcp","mode":"dsr-ipip",
	"backends":[{"addr":"10.1.0.11","weight":100,"state":"active"},{"addr":"10.1.0.12","weight":200,"state":"drain"}],
	"table_size":65537,"hash_input":"5-tuple","version":3}`

func TestSvcSetSendsTheService(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"PUT /v1/services/web": {body: webService}})
	r := f.run("svc", "set", "web", "--vip", "203.0.113.10", "--port", "443", "--backend", "10.1.0.11",
		"--backend", "10.1.0.12,weight=200,state=drain", "--if-match", "2")
	wantOK(t, r)
	req := f.last(t)
	var got l4.Service
	if err := json.Unmarshal([]byte(req.Body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "web" || got.Port != 443 || got.Proto != l4.TCP || got.Mode != l4.ModeDSRIPIP || len(got.Backends) != 2 ||
		got.Backends[0].Weight != 100 || got.Backends[1].Weight != 200 || got.Backends[1].State != l4.Drain {
		t.Fatalf("sent %+v", got)
	}
	if req.Header.Get("If-Match") != `"2"` {
		t.Fatalf("If-Match %q", req.Header.Get("If-Match"))
	}
	wantStdout(t, r, `name        web
endpoint    203.0.113.10:443/tcp
mode        dsr-ipip
hash        5-tuple
table size  65537
version     3

BACKEND    WEIGHT  STATE
10.1.0.11  100     active
10.1.0.12  200     drain
`)
}

func TestSvcSetRejectsBadBackends(t *testing.T) {
	f := newFakeAPI(t, nil)
	wantUsageError(t, f.run("svc", "set", "web", "--vip", "203.0.113.10", "--backend", "10.1.0.11,weight=70000"), `svc set: --backend "10.1.0.11,weight=70000": weight "70000": want 0-65535`)
	wantUsageError(t, f.run("svc", "set", "web", "--vip", "203.0.113.10", "--backend", "10.1.0.11,colour=red"), `svc set: --backend "10.1.0.11,colour=red": unknown option "colour": want weight=N or state=active|drain|down`)
	wantUsageError(t, f.run("svc", "set", "web", "--vip", "not-an-ip"), `svc set: --vip: ParseAddr("not-an-ip"): unable to parse IP`)
	if n := len(f.requests()); n != 0 {
		t.Fatalf("%d requests sent for bad input", n)
	}
}

func TestSvcBackendPatches(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"PATCH /v1/services/web/backends/10.1.0.12": {body: webService}})
	wantOK(t, f.run("svc", "backend", "web", "10.1.0.12", "--drain"))
	if body := f.last(t).Body; body != `{"state":"drain"}`+"\n" && body != `{"state":"drain"}` {
		t.Fatalf("sent %q", body)
	}
	wantOK(t, f.run("svc", "backend", "web", "10.1.0.12", "--weight", "0"))
	if body := f.last(t).Body; body != `{"weight":0}`+"\n" && body != `{"weight":0}` {
		t.Fatalf("sent %q", body)
	}
	wantUsageError(t, f.run("svc", "backend", "web", "10.1.0.12", "--drain", "--up"), "svc backend: --drain, --down and --up exclude each other")
	wantUsageError(t, f.run("svc", "backend", "web", "10.1.0.12"), "svc backend: give --weight, --drain, --down or --up")
}

func TestSvcListTable(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/services": {body: `{"services":[` + webService + `]}`}})
	wantStdout(t, f.run("svc", "list"), `NAME  ENDPOINT              MODE      BACKENDS  VERSION
web   203.0.113.10:443/tcp  dsr-ipip  1/2       3
`)
}
