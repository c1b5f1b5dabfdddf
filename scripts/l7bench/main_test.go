package main

import (
	"math"
	"testing"
	"time"
)

func TestPairedTakesEachRoundsOwnRatio(t *testing.T) {
	ms := time.Millisecond
	// Round 2 is a slow moment of the machine for both contenders; the
	// medians of the rounds (90 and 90 req/s) would call them even.
	a := []result{{rps: 100, p99: 2 * ms}, {rps: 50, p99: 4 * ms}, {rps: 90, p99: 3 * ms}}
	b := []result{{rps: 90, p99: 3 * ms}, {rps: 45, p99: 5 * ms}, {rps: 100, p99: 2 * ms}}
	rps, p99 := paired(a, b)
	if math.Abs(rps-100.0/90) > 1e-9 {
		t.Errorf("req/s ratio %.4f, want the median round's 1.1111", rps)
	}
	if math.Abs(p99-0.8) > 1e-9 {
		t.Errorf("p99 ratio %.4f, want the median round's 0.8", p99)
	}
	// A contender that stopped early is paired over the rounds both ran.
	if rps, _ := paired(a[:1], b); math.Abs(rps-100.0/90) > 1e-9 {
		t.Errorf("one round: %.4f, want 1.1111", rps)
	}
	if rps, p99 := paired(nil, b); rps != 0 || p99 != 0 {
		t.Errorf("no rounds: %v %v, want 0 0", rps, p99)
	}
}

func TestParseWrk(t *testing.T) {
	out := `Running 5s test @ http://127.0.0.1:1/
  1 threads and 64 connections
  Latency Distribution
     50%  806.00us
     75%    0.89ms
     90%    1.00ms
     99%    1.58ms
  301234 requests in 5.00s, 40.22MB read
Requests/sec:  60246.80
Transfer/sec:      8.04MB
`
	rps, p99, err := parseWrk(out)
	if err != nil || rps != 60246.80 || p99 != 1580*time.Microsecond {
		t.Fatalf("parseWrk = %v, %v, %v; want 60246.80, 1.58ms", rps, p99, err)
	}
	bad := out + "  Non-2xx or 3xx responses: 12\n"
	if _, _, err := parseWrk(bad); err == nil {
		t.Error("wrk's errors were not reported")
	}
	if _, _, err := parseWrk("connection refused"); err == nil {
		t.Error("output without a rate was accepted")
	}
}
