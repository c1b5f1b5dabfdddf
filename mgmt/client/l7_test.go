package client

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// sentJSON decodes the body the fake server saw.
func sentJSON(t *testing.T, rec *recorded) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(rec.Body), &m); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	return m
}

const siteJSON = `{"name":"site","service":"web","hosts":["www.example.com","*.example.org"],"tls":true,
	"locations":[{"name":"api","match":"prefix","path":"/api/","upstream":"app","connect_timeout":"2s","read_timeout":"1m30s","tries":2,"retry_non_idempotent":true}],
	"version":4}`

var site = VServerView{VServer: VServer{Name: "site", Service: "web", Hosts: []string{"www.example.com", "*.example.org"}, TLS: true,
	Locations: []Location{{Name: "api", Match: "prefix", Path: "/api/", Upstream: "app", ConnectTimeout: Duration(2 * time.Second),
		ReadTimeout: Duration(90 * time.Second), Tries: 2, RetryNonIdempotent: true}}}, Version: 4}

func TestVServers(t *testing.T) {
	c, rec := recorder(t, 200, nil, `{"vservers":[`+siteJSON+`]}`)
	vs, err := c.VServers(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(vs, []VServerView{site}) || rec.Method != "GET" || rec.Path != "/v1/vservers" {
		t.Errorf("VServers = %+v; server saw %+v", vs, rec)
	}

	c, rec = recorder(t, 200, nil, siteJSON)
	v, err := c.GetVServer(testContext(t), "site")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, site) || rec.Path != "/v1/vservers/site" {
		t.Errorf("GetVServer = %+v; server saw %+v", v, rec)
	}
}

func TestSetVServerSendsItWithItsVersion(t *testing.T) {
	c, rec := recorder(t, 200, nil, siteJSON)
	v, err := c.SetVServer(testContext(t), site.VServer, "3")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, site) || rec.Method != "PUT" || rec.Path != "/v1/vservers/site" || rec.IfMatch != `"3"` ||
		rec.ContentType != "application/json" {
		t.Errorf("SetVServer = %+v; server saw %+v", v, rec)
	}
	var sent VServer
	if err := json.Unmarshal([]byte(rec.Body), &sent); err != nil || !reflect.DeepEqual(sent, site.VServer) {
		t.Errorf("sent %s (%v), want %+v", rec.Body, err, site.VServer)
	}
	loc := sentJSON(t, rec)["locations"].([]any)[0].(map[string]any)
	if loc["connect_timeout"] != "2s" || loc["read_timeout"] != "1m30s" {
		t.Errorf("timeouts sent as %v and %v, want \"2s\" and \"1m30s\"", loc["connect_timeout"], loc["read_timeout"])
	}

	// A new virtual server goes with an empty list of locations, not null.
	c, rec = recorder(t, 200, nil, `{"name":"bare","service":"web","locations":[],"version":1}`)
	if _, err := c.SetVServer(testContext(t), VServer{Name: "bare", Service: "web"}, ""); err != nil {
		t.Fatal(err)
	}
	if rec.Body != `{"name":"bare","service":"web","locations":[]}` || rec.IfMatch != "" {
		t.Errorf("server saw %+v", rec)
	}
}

func TestDeleteVServer(t *testing.T) {
	c, rec := recorder(t, 204, nil, "")
	if err := c.DeleteVServer(testContext(t), "site", "*"); err != nil {
		t.Fatal(err)
	}
	if rec.Method != "DELETE" || rec.Path != "/v1/vservers/site" || rec.IfMatch != "*" {
		t.Errorf("server saw %+v", rec)
	}
}

func TestSetAndDeleteLocation(t *testing.T) {
	c, rec := recorder(t, 200, nil, siteJSON)
	l := Location{Name: "api", Path: "/api/", Upstream: "app", Tries: 2}
	v, err := c.SetLocation(testContext(t), "site", l)
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != 4 || rec.Method != "PUT" || rec.Path != "/v1/vservers/site/locations/api" ||
		rec.Body != `{"name":"api","path":"/api/","upstream":"app","tries":2}` {
		t.Errorf("SetLocation = %+v; server saw %+v", v, rec)
	}

	c, rec = recorder(t, 200, nil, `{"name":"site","service":"web","locations":[],"version":5}`)
	v, err = c.DeleteLocation(testContext(t), "site", "api")
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != 5 || len(v.Locations) != 0 || rec.Method != "DELETE" || rec.Path != "/v1/vservers/site/locations/api" {
		t.Errorf("DeleteLocation = %+v; server saw %+v", v, rec)
	}
}

const appJSON = `{"name":"app","balancer":"hash","hash_key":"cookie:sid","keepalive":16,"connect_timeout":"3s",
	"read_timeout":"30s","write_timeout":"30s","tls":{"mode":"tls","server_name":"app.internal","skip_verify":true},
	"servers":[{"id":1,"addr":"10.1.0.11:8080","weight":5,"max_fails":3,"fail_timeout":"10s","active":2,"available":true},
		{"id":2,"addr":"10.1.0.12:8080","backup":true,"down":true,"active":0,"available":false}],
	"version":7}`

var app = UpstreamView{
	Upstream: Upstream{Name: "app", Balancer: "hash", HashKey: "cookie:sid", KeepAlive: 16, ConnectTimeout: Duration(3 * time.Second),
		ReadTimeout: Duration(30 * time.Second), WriteTimeout: Duration(30 * time.Second),
		TLS: &UpstreamTLS{Mode: "tls", ServerName: "app.internal", SkipVerify: true}},
	Servers: []ServerView{
		{Server: Server{ID: 1, Addr: "10.1.0.11:8080", Weight: 5, MaxFails: 3, FailTimeout: Duration(10 * time.Second)}, Active: 2, Available: true},
		{Server: Server{ID: 2, Addr: "10.1.0.12:8080", Backup: true, Down: true}},
	},
	Version: 7,
}

func TestUpstreams(t *testing.T) {
	c, rec := recorder(t, 200, nil, `{"upstreams":[`+appJSON+`]}`)
	us, err := c.Upstreams(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(us, []UpstreamView{app}) || rec.Path != "/v1/upstreams" {
		t.Errorf("Upstreams = %+v; server saw %+v", us, rec)
	}

	c, rec = recorder(t, 200, nil, appJSON)
	u, err := c.GetUpstream(testContext(t), "app")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(u, app) || rec.Path != "/v1/upstreams/app" {
		t.Errorf("GetUpstream = %+v; server saw %+v", u, rec)
	}
}

func TestSetUpstream(t *testing.T) {
	c, rec := recorder(t, 200, nil, appJSON)
	in := Upstream{Name: "app", Balancer: "least_conn", Servers: []Server{
		{Addr: "10.1.0.11:8080", Weight: 5, MaxFails: 3, FailTimeout: Duration(10 * time.Second)},
		{Addr: "10.1.0.12:8080", Backup: true},
	}, TLS: &UpstreamTLS{Mode: "tlcp", CA: "-----BEGIN CERTIFICATE-----\n"}}
	u, err := c.SetUpstream(testContext(t), in, "6")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"app","balancer":"least_conn","servers":[` +
		`{"addr":"10.1.0.11:8080","weight":5,"max_fails":3,"fail_timeout":"10s"},{"addr":"10.1.0.12:8080","backup":true}],` +
		`"tls":{"mode":"tlcp","ca":"-----BEGIN CERTIFICATE-----\n"}}`
	if u.Version != 7 || rec.Method != "PUT" || rec.Path != "/v1/upstreams/app" || rec.IfMatch != `"6"` || rec.Body != want {
		t.Errorf("SetUpstream = %+v; server saw %+v\nwant body %s", u, rec, want)
	}

	c, rec = recorder(t, 200, nil, `{"name":"empty","servers":[],"version":1}`)
	if _, err := c.SetUpstream(testContext(t), Upstream{Name: "empty"}, ""); err != nil {
		t.Fatal(err)
	}
	if rec.Body != `{"name":"empty","servers":[]}` {
		t.Errorf("an upstream without servers sent %s", rec.Body)
	}
}

func TestDeleteUpstreamInUseIsAConflict(t *testing.T) {
	c, rec := recorder(t, 409, nil, `{"error":{"code":"conflict","message":"upstream \"app\" is used by site/root"}}`)
	err := c.DeleteUpstream(testContext(t), "app", "")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 409 || rec.Method != "DELETE" || rec.Path != "/v1/upstreams/app" {
		t.Errorf("DeleteUpstream = %v; server saw %+v", err, rec)
	}
}

func TestResetUpstreamStats(t *testing.T) {
	c, rec := recorder(t, 204, nil, "")
	if err := c.ResetUpstreamStats(testContext(t), "app"); err != nil {
		t.Fatal(err)
	}
	if rec.Method != "DELETE" || rec.Path != "/v1/upstreams/app/stats" {
		t.Errorf("server saw %+v", rec)
	}
}

func TestServers(t *testing.T) {
	c, rec := recorder(t, 200, nil, `[{"id":1,"addr":"10.1.0.11:8080","weight":5,"max_fails":3,"fail_timeout":"10s","active":2,"available":true}]`)
	ss, err := c.Servers(testContext(t), "app")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ss, app.Servers[:1]) || rec.Path != "/v1/upstreams/app/servers" {
		t.Errorf("Servers = %+v; server saw %+v", ss, rec)
	}

	c, rec = recorder(t, 200, nil, `{"id":2,"addr":"10.1.0.12:8080","backup":true,"down":true,"active":0,"available":false}`)
	s, err := c.GetServer(testContext(t), "app", 2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, app.Servers[1]) || rec.Method != "GET" || rec.Path != "/v1/upstreams/app/servers/2" {
		t.Errorf("GetServer = %+v; server saw %+v", s, rec)
	}
}

func TestAddServerReturnsTheAssignedID(t *testing.T) {
	c, rec := recorder(t, 201, nil, `{"id":3,"addr":"10.1.0.13:8080","weight":2,"active":0,"available":true}`)
	s, err := c.AddServer(testContext(t), "app", Server{Addr: "10.1.0.13:8080", Weight: 2})
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != 3 || !s.Available || rec.Method != "POST" || rec.Path != "/v1/upstreams/app/servers" ||
		rec.Body != `{"addr":"10.1.0.13:8080","weight":2}` {
		t.Errorf("AddServer = %+v; server saw %+v", s, rec)
	}
}

func TestPatchServerSendsOnlyWhatChanges(t *testing.T) {
	c, rec := recorder(t, 200, nil, `{"id":1,"addr":"10.1.0.11:8080","weight":0,"down":true,"active":1,"available":false}`)
	zero, down, ft := 0, true, Duration(30*time.Second)
	s, err := c.PatchServer(testContext(t), "app", 1, ServerPatch{Weight: &zero, Down: &down, FailTimeout: &ft})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Down || s.Available || rec.Method != "PATCH" || rec.Path != "/v1/upstreams/app/servers/1" ||
		rec.Body != `{"weight":0,"fail_timeout":"30s","down":true}` {
		t.Errorf("PatchServer = %+v; server saw %+v", s, rec)
	}
}

func TestDeleteServer(t *testing.T) {
	c, rec := recorder(t, 404, nil, `{"error":{"code":"not_found","message":"upstream \"app\" has no server 9"}}`)
	err := c.DeleteServer(testContext(t), "app", 9)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 404 || rec.Method != "DELETE" || rec.Path != "/v1/upstreams/app/servers/9" {
		t.Errorf("DeleteServer = %v; server saw %+v", err, rec)
	}
}

func TestCerts(t *testing.T) {
	const view = `{"name":"site","kind":"tls","default":true,"cert":"-----BEGIN CERTIFICATE-----\n","version":2}`
	want := CertView{Name: "site", Kind: "tls", Default: true, Cert: "-----BEGIN CERTIFICATE-----\n", Version: 2}
	c, rec := recorder(t, 200, nil, `{"certs":[`+view+`]}`)
	cs, err := c.Certs(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cs, []CertView{want}) || rec.Path != "/v1/certs" {
		t.Errorf("Certs = %+v; server saw %+v", cs, rec)
	}

	c, rec = recorder(t, 200, nil, view)
	cv, err := c.GetCert(testContext(t), "site")
	if err != nil {
		t.Fatal(err)
	}
	if cv != want || rec.Path != "/v1/certs/site" {
		t.Errorf("GetCert = %+v; server saw %+v", cv, rec)
	}

	c, rec = recorder(t, 200, nil, `{"name":"gm","kind":"tlcp","sign_cert":"S","enc_cert":"E","version":1}`)
	cv, err = c.SetCert(testContext(t), Cert{Name: "gm", Kind: "tlcp", SignCert: "S", SignKey: "SK", EncCert: "E", EncKey: "EK"}, "*")
	if err != nil {
		t.Fatal(err)
	}
	if cv.SignCert != "S" || cv.EncCert != "E" || rec.Method != "PUT" || rec.Path != "/v1/certs/gm" || rec.IfMatch != "*" ||
		rec.Body != `{"name":"gm","kind":"tlcp","sign_cert":"S","sign_key":"SK","enc_cert":"E","enc_key":"EK"}` {
		t.Errorf("SetCert = %+v; server saw %+v", cv, rec)
	}

	c, rec = recorder(t, 204, nil, "")
	if err := c.DeleteCert(testContext(t), "gm", "1"); err != nil {
		t.Fatal(err)
	}
	if rec.Method != "DELETE" || rec.Path != "/v1/certs/gm" || rec.IfMatch != `"1"` {
		t.Errorf("DeleteCert: server saw %+v", rec)
	}
}

func TestAccessLog(t *testing.T) {
	c, rec := recorder(t, 200, nil, `{"config":{"enabled":true,"format":"json","path":"/var/log/sluice/access.log","buffer":4096},"stats":{"written":10,"dropped":1,"errors":2}}`)
	a, err := c.AccessLog(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	want := AccessLogStatus{Config: AccessLog{Enabled: true, Format: "json", Path: "/var/log/sluice/access.log", Buffer: 4096},
		Stats: &AccessLogStats{Written: 10, Dropped: 1, Errors: 2}}
	if !reflect.DeepEqual(a, want) || rec.Path != "/v1/accesslog" {
		t.Errorf("AccessLog = %+v; server saw %+v", a, rec)
	}

	c, rec = recorder(t, 200, nil, `{"config":{"enabled":false,"format":"combined"}}`)
	got, err := c.SetAccessLog(testContext(t), AccessLog{Format: "combined"})
	if err != nil {
		t.Fatal(err)
	}
	if got != (AccessLog{Format: "combined"}) || rec.Method != "PUT" || rec.Path != "/v1/accesslog" ||
		rec.Body != `{"enabled":false,"format":"combined"}` {
		t.Errorf("SetAccessLog = %+v; server saw %+v", got, rec)
	}
}

func TestL7Stats(t *testing.T) {
	c, rec := recorder(t, 200, nil, `{"time":"2026-11-29T03:00:00Z",
		"vservers":{"site":{"requests":12,"bytes_in":1000,"bytes_out":64000,"active":1,"responses":{"1xx":0,"2xx":10,"3xx":0,"4xx":1,"5xx":1,"xxx":0}}},
		"locations":{"site":{"root":{"requests":12,"bytes_in":1000,"bytes_out":64000,"active":1,"responses":{"2xx":10,"4xx":1,"5xx":1}}}},
		"upstreams":{"app":{"servers":{"10.1.0.11:8080":{"requests":7,"bytes_in":0,"bytes_out":0,"active":0,"responses":{"2xx":7},
			"upstream_latency":{"buckets":[{"le":0.005,"count":7}],"count":7,"sum":0.01,"p50":0.001,"p90":0.002,"p99":0.004}}}}}}`)
	s, err := c.L7Stats(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	vs, srv := s.VServers["site"], s.Upstreams["app"].Servers["10.1.0.11:8080"]
	if rec.Path != "/v1/stats/l7" || vs.Requests != 12 || vs.Responses.Status5xx != 1 || vs.BytesOut != 64000 ||
		s.Locations["site"]["root"].Responses.Status2xx != 10 || srv.Requests != 7 || srv.UpstreamLatency == nil ||
		srv.UpstreamLatency.P99 != 0.004 || !s.Time.Equal(time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)) {
		t.Errorf("L7Stats = %+v; server saw %+v", s, rec)
	}
}

func TestNoL7ProxyIsNotFound(t *testing.T) {
	c, _ := recorder(t, 404, nil, `{"error":{"code":"not_found","message":"the l7 proxy is not running in this daemon"}}`)
	_, err := c.VServers(testContext(t))
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Message != "the l7 proxy is not running in this daemon" {
		t.Errorf("VServers from a daemon without the proxy: %v", err)
	}
}

func TestDurationJSON(t *testing.T) {
	for in, want := range map[string]Duration{`"10s"`: Duration(10 * time.Second), `"1m30s"`: Duration(90 * time.Second),
		`1.5`: Duration(1500 * time.Millisecond), `"0s"`: 0} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || d != want {
			t.Errorf("Duration from %s = %v, %v; want %v", in, d, err, want)
		}
	}
	for _, bad := range []string{`"ten seconds"`, `true`, `"10"`} {
		var d Duration
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("Duration from %s = %v, want an error", bad, d)
		}
	}
	if b, _ := json.Marshal(Duration(2500 * time.Millisecond)); string(b) != `"2.5s"` {
		t.Errorf("Duration 2.5s marshals as %s", b)
	}
}
