package main

import "testing"

const accessLogJSON = `{"config":{"enabled":false,"format":"combined","syslog":"udp://logs:514","buffer":4096},"stats":{"written":12000,"dropped":3,"errors":0}}`

func TestLogSetChangesOnlyWhatTheFlagsSay(t *testing.T) {
	for _, tc := range []struct {
		args []string
		sent string
	}{
		{[]string{"--format", "json", "--path", "/var/log/sluice/access.log"},
			`{"enabled":true,"format":"json","path":"/var/log/sluice/access.log","buffer":4096}`},
		{nil, `{"enabled":true,"format":"combined","syslog":"udp://logs:514","buffer":4096}`},
		{[]string{"--off", "--buffer", "100"}, `{"enabled":false,"format":"combined","syslog":"udp://logs:514","buffer":100}`},
		{[]string{"--template", "$remote_addr $status"}, `{"enabled":true,"format":"template","template":"$remote_addr $status","syslog":"udp://logs:514","buffer":4096}`},
		{[]string{"--syslog", "unixgram:///dev/log"}, `{"enabled":true,"format":"combined","syslog":"unixgram:///dev/log","buffer":4096}`},
	} {
		f := newFakeAPI(t, map[string]canned{
			"GET /v1/accesslog": {body: accessLogJSON},
			"PUT /v1/accesslog": {body: `{"config":{"enabled":true,"format":"json","path":"/var/log/sluice/access.log","buffer":4096}}`},
		})
		r := f.run(append([]string{"log", "set"}, tc.args...)...)
		wantOK(t, r)
		reqs := f.requests()
		if len(reqs) != 2 || reqs[0].Method != "GET" || reqs[1].Method != "PUT" || reqs[1].Body != tc.sent {
			t.Errorf("log set %v: sent %+v\nwant GET, then PUT %s", tc.args, reqs, tc.sent)
		}
		if tc.args == nil && r.stdout != "enabled  yes\nformat   json\npath     /var/log/sluice/access.log\nbuffer   4096\n" {
			t.Errorf("log set printed\n%s", r.stdout)
		}
	}
}

func TestLogShow(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/accesslog": {body: accessLogJSON}})
	wantStdout(t, f.run("log", "show"), `enabled  no
format   combined
syslog   udp://logs:514
buffer   4096

WRITTEN  DROPPED  ERRORS
12.0k    3        0
`)
	r := f.run("log", "show", "-o", "json")
	wantOK(t, r)
	sameJSON(t, r.stdout, accessLogJSON)
}
