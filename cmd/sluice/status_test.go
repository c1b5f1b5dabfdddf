package main

import "testing"

const statusJSON = `{"version":"0.1.0","pid":4242,"uptime_seconds":93784.6,"bpffs":"/sys/fs/bpf/sluice",
	"interfaces":[{"name":"eth0","ifindex":2,"xdp_mode":"native","program_id":123,"link_id":45},
	{"name":"enp65s0f1","ifindex":7,"xdp_mode":"generic","program_id":123,"link_id":46}]}`

const statsJSON = `{"interfaces":[{"name":"eth0","ifindex":2,"verdicts":{
		"pass":{"packets":1234567,"bytes":1610612736},"drop":{"packets":9999,"bytes":640000},
		"tx":{"packets":0,"bytes":0},"redirect":{"packets":0,"bytes":0},"aborted":{"packets":1,"bytes":60}}}],
	"drops":{"malformed":{"packets":3,"bytes":180},"acl_deny":{"packets":9990,"bytes":639400},"acl_not_allowed":{"packets":6,"bytes":420}},
	"lists":[{"name":"bad","kind":"deny","entries":1048576,"drops":{"packets":9990,"bytes":639400}}]}`

func TestStatusTable(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/status": {body: statusJSON}})
	wantStdout(t, f.run("status"), `version  0.1.0
pid      4242
uptime   1d2h3m5s
bpffs    /sys/fs/bpf/sluice

IFACE      IFINDEX  XDP MODE  PROGRAM ID  LINK ID
eth0       2        native    123         45
enp65s0f1  7        generic   123         46
`)
}

func TestStatusWithoutInterfaces(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/status": {body: `{"version":"0.1.0","uptime_seconds":2,"bpffs":"/sys/fs/bpf/sluice","interfaces":[]}`}})
	wantStdout(t, f.run("status"), "version  0.1.0\nuptime   2s\nbpffs    /sys/fs/bpf/sluice\n\nno interfaces attached\n")
}

func TestStatusJSON(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/status": {body: statusJSON}})
	r := f.run("status", "-o", "json")
	wantOK(t, r)
	sameJSON(t, r.stdout, statusJSON)
}

func TestStatsTableIsHumanised(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/stats": {body: statsJSON}})
	wantStdout(t, f.run("stats"), `IFACE  VERDICT   PACKETS  BYTES
eth0   pass      1.2M     1.5 GiB
eth0   drop      9999     625.0 KiB
eth0   tx        0        0 B
eth0   redirect  0        0 B
eth0   aborted   1        60 B

DROP REASON      PACKETS  BYTES
acl_deny         9990     624.4 KiB
acl_not_allowed  6        420 B
malformed        3        180 B

LIST  KIND  ENTRIES    DROPPED  BYTES
bad   deny  1,048,576  9990     624.4 KiB
`)
}

func TestStatsJSONKeepsExactCounts(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/stats": {body: statsJSON}})
	r := f.run("stats", "--output", "json")
	wantOK(t, r)
	sameJSON(t, r.stdout, statsJSON)
}
