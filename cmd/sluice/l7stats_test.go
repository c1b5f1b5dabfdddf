package main

import "testing"

const l7StatsJSON = `{"time":"2026-11-29T03:00:00Z",
	"connections":{"active":7,"accepted":123456},
	"vservers":{
		"site":{"requests":12345,"bytes_in":2048,"bytes_out":5242880,"active":3,"responses":{"1xx":0,"2xx":12000,"3xx":300,"4xx":40,"5xx":5,"xxx":0},
			"latency":{"buckets":[{"le":0.005,"count":10000},{"le":0.05,"count":12345}],"count":12345,"sum":61.2,"p50":0.0025,"p90":0.0045,"p99":0.0421}},
		"api":{"requests":0,"bytes_in":0,"bytes_out":0,"active":0,"responses":{"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"xxx":0}}},
	"locations":{"site":{
		"root":{"requests":12000,"bytes_in":2048,"bytes_out":5000000,"active":3,"responses":{"1xx":0,"2xx":11700,"3xx":300,"4xx":0,"5xx":0,"xxx":0}},
		"api":{"requests":345,"bytes_in":0,"bytes_out":242880,"active":0,"responses":{"1xx":0,"2xx":300,"3xx":0,"4xx":40,"5xx":5,"xxx":0},
			"latency":{"buckets":[{"le":5,"count":345}],"count":345,"sum":400,"p50":1.2,"p90":2.5,"p99":4.567}}}},
	"upstreams":{"app":{"servers":{
		"10.1.0.12:8080":{"requests":6000,"bytes_in":1024,"bytes_out":2600000,"active":1,"responses":{"1xx":0,"2xx":5995,"3xx":0,"4xx":0,"5xx":5,"xxx":0},
			"upstream_latency":{"buckets":[{"le":0.001,"count":6000}],"count":6000,"sum":3,"p50":0.0004,"p90":0.0008,"p99":0.000987}},
		"10.1.0.11:8080":{"requests":6345,"bytes_in":1024,"bytes_out":2642880,"active":2,"responses":{"1xx":0,"2xx":6305,"3xx":0,"4xx":40,"5xx":0,"xxx":0}}}}}}`

func TestStatsL7Table(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/stats/l7": {body: l7StatsJSON}})
	wantStdout(t, f.run("stats", "--l7"), `CONNECTIONS  ACTIVE  ACCEPTED
clients      7       123.5k

VSERVER  LOCATION  REQUESTS  2XX    3XX  4XX  5XX  IN       OUT        ACTIVE  P99
api      *         0         0      0    0    0    0 B      0 B        0       -
site     *         12.3k     12.0k  300  40   5    2.0 KiB  5.0 MiB    3       42.1ms
         api       345       300    0    40   5    0 B      237.2 KiB  0       4.57s
         root      12.0k     11.7k  300  0    0    2.0 KiB  4.8 MiB    3       -

UPSTREAM  SERVER          REQUESTS  2XX   3XX  4XX  5XX  IN       OUT      ACTIVE  P99
app       10.1.0.11:8080  6345      6305  0    40   0    1.0 KiB  2.5 MiB  2       -
app       10.1.0.12:8080  6000      5995  0    0    5    1.0 KiB  2.5 MiB  1       987µs
`)
	if req := f.last(t); req.Path != "/v1/stats/l7" {
		t.Errorf("stats --l7 asked for %s", req.Path)
	}
}

func TestStatsL7JSONIsTheSnapshot(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/stats/l7": {body: l7StatsJSON}})
	r := f.run("stats", "--l7", "-o", "json")
	wantOK(t, r)
	sameJSON(t, r.stdout, l7StatsJSON)
}

func TestStatsL7WithoutTheProxy(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/stats/l7": {status: 404,
		body: `{"error":{"code":"not_found","message":"the l7 proxy is not running in this daemon"}}`}})
	r := f.run("stats", "--l7")
	if r.code != 1 || r.stderr != "sluice: 404 not_found: the l7 proxy is not running in this daemon\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}
