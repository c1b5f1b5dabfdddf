package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

const aclJSON = `{"policy":"deny","protect":["192.0.2.0/24","2001:db8::/32"],
	"lists":[{"name":"bad","kind":"deny","entries":1234567,"version":"7"},{"name":"partners","kind":"allow","entries":12,"version":"1"}]}`

const syncJSON = `{"name":"bad","kind":"deny","version":"8","added":10,"removed":2,"entries":1234575,"duration_ms":12.34}`

const syncTable = `LIST  KIND  VERSION  ADDED  REMOVED  ENTRIES    TOOK
bad   deny  8        10     2        1,234,575  12.3ms
`

func TestACLListTable(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/acl": {body: aclJSON}})
	wantStdout(t, f.run("acl", "list"), `policy   deny
protect  192.0.2.0/24, 2001:db8::/32

NAME      KIND   ENTRIES    VERSION
bad       deny   1,234,567  7
partners  allow  12         1
`)
}

func TestACLListEmpty(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/acl": {body: `{"policy":"allow","protect":[],"lists":[]}`}})
	wantStdout(t, f.run("acl", "list"), "policy   allow\nprotect  -\n\nno lists\n")
}

func TestACLListJSON(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/acl": {body: aclJSON}})
	r := f.run("acl", "list", "-o", "json")
	wantOK(t, r)
	sameJSON(t, r.stdout, aclJSON)
}

func TestACLPolicyShowsAndSets(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{
		"GET /v1/acl":        {body: aclJSON},
		"PUT /v1/acl/policy": {body: `{"mode":"allow"}`},
	})
	wantStdout(t, f.run("acl", "policy"), "policy  deny\n")
	if r := f.last(t); r.Method != "GET" {
		t.Errorf("acl policy without argument sent %s %s", r.Method, r.Path)
	}

	r := f.run("acl", "policy", "-o", "json", "allow")
	wantOK(t, r)
	sameJSON(t, r.stdout, `{"mode":"allow"}`)
	if req := f.last(t); req.Method != "PUT" || req.Path != "/v1/acl/policy" || req.Body != `{"mode":"allow"}` {
		t.Errorf("acl policy allow sent %+v", req)
	}
}

func TestACLProtectShowsReplacesAndClears(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{
		"GET /v1/acl":         {body: aclJSON},
		"PUT /v1/acl/protect": {body: `{"prefixes":["198.51.100.0/24"]}`},
	})
	wantStdout(t, f.run("acl", "protect"), "PROTECT\n192.0.2.0/24\n2001:db8::/32\n")

	wantStdout(t, f.run("acl", "protect", "198.51.100.0/24"), "PROTECT\n198.51.100.0/24\n")
	if req := f.last(t); req.Method != "PUT" || req.Body != `{"prefixes":["198.51.100.0/24"]}` {
		t.Errorf("acl protect CIDR sent %+v", req)
	}

	f.routes["PUT /v1/acl/protect"] = canned{body: `{"prefixes":[]}`}
	r := f.run("acl", "protect", "--clear", "-o", "json")
	wantOK(t, r)
	sameJSON(t, r.stdout, `{"prefixes":[]}`)
	if req := f.last(t); req.Body != `{"prefixes":[]}` {
		t.Errorf("acl protect --clear sent %q", req.Body)
	}
	wantStdout(t, f.run("acl", "protect", "--clear"), "no protect prefixes\n")
}

func TestACLAddAndDelPatchTheList(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"PATCH /v1/acl/lists/bad": {body: syncJSON, header: map[string]string{"ETag": `"8"`}}})
	for _, tc := range []struct {
		cmd       string
		args      []string
		wantBody  map[string][]string
		wantQuery string
		ifMatch   string
	}{
		{"add", []string{"bad", "203.0.113.0/24", "2001:db8::7"},
			map[string][]string{"add": {"203.0.113.0/24", "2001:db8::7"}, "remove": {}}, "", ""},
		{"add", []string{"--kind", "allow", "--if-match", "7", "bad", "203.0.113.9"},
			map[string][]string{"add": {"203.0.113.9"}, "remove": {}}, "kind=allow", `"7"`},
		{"del", []string{"bad", "203.0.113.0/24"},
			map[string][]string{"add": {}, "remove": {"203.0.113.0/24"}}, "", ""},
	} {
		wantStdout(t, f.run(append([]string{"acl", tc.cmd}, tc.args...)...), syncTable)
		req := f.last(t)
		var body map[string][]string
		if err := json.Unmarshal([]byte(req.Body), &body); err != nil {
			t.Fatalf("body %q: %v", req.Body, err)
		}
		if req.Method != "PATCH" || req.Path != "/v1/acl/lists/bad" || req.Query != tc.wantQuery ||
			req.Header.Get("If-Match") != tc.ifMatch || !reflect.DeepEqual(body, tc.wantBody) {
			t.Errorf("acl %s %v sent %s %s?%s If-Match %q body %s", tc.cmd, tc.args, req.Method, req.Path, req.Query,
				req.Header.Get("If-Match"), req.Body)
		}
	}
	r := f.run("acl", "add", "-o", "json", "bad", "203.0.113.0/24")
	wantOK(t, r)
	sameJSON(t, r.stdout, syncJSON)
}

func TestACLShowStreamsAValidListFile(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{
		"GET /v1/acl":           {body: aclJSON},
		"GET /v1/acl/lists/bad": {body: "10.0.0.0/8\n2001:db8::/32\n", header: map[string]string{"ETag": `"7"`, "Content-Type": "text/plain"}},
	})
	wantStdout(t, f.run("acl", "show", "bad"), "# list bad (deny), version 7, 1,234,567 entries\n10.0.0.0/8\n2001:db8::/32\n")
	if a := f.last(t).Header.Get("Accept"); a != "text/plain" {
		t.Errorf("acl show asked for %q, want text/plain", a)
	}
}

func TestACLShowJSON(t *testing.T) {
	const list = `{"name":"bad","kind":"deny","version":"7","entries":["10.0.0.0/8","2001:db8::/32"]}`
	f := newFakeAPI(t, map[string]canned{"GET /v1/acl/lists/bad": {body: list, header: map[string]string{"ETag": `"7"`}}})
	r := f.run("acl", "show", "-o", "json", "bad")
	wantOK(t, r)
	sameJSON(t, r.stdout, list)
}

func TestACLShowMissingList(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{
		"GET /v1/acl":            {body: aclJSON},
		"GET /v1/acl/lists/gone": {status: 404, body: `{"error":{"code":"not_found","message":"no list \"gone\""}}`},
	})
	r := f.run("acl", "show", "gone")
	if r.code != 1 || r.stdout != "" || r.stderr != "sluice: 404 not_found: no list \"gone\"\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestACLDrop(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{
		"DELETE /v1/acl/lists/bad":  {status: 204},
		"DELETE /v1/acl/lists/busy": {status: 412, body: `{"error":{"code":"version_mismatch","message":"If-Match does not match the current version \"9\""}}`},
	})
	wantStdout(t, f.run("acl", "drop", "bad"), "deleted list bad\n")
	r := f.run("acl", "drop", "--if-match", "8", "busy")
	if r.code != 1 || r.stdout != "" || r.stderr != "sluice: 412 version_mismatch: If-Match does not match the current version \"9\"\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if im := f.last(t).Header.Get("If-Match"); im != `"8"` {
		t.Errorf("If-Match %q, want \"8\"", im)
	}
}

const checkJSON = `{"ip":"203.0.113.7","verdict":"drop","reason":"acl_deny",
	"lists":[{"name":"bad","kind":"deny","prefix":"203.0.113.0/24"},{"name":"protect","kind":"protect","prefix":"203.0.113.7/32"}]}`

func TestACLCheck(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/acl/check": {body: checkJSON}})
	wantStdout(t, f.run("acl", "check", "203.0.113.7"), `ip       203.0.113.7
verdict  drop
reason   acl_deny

LIST     KIND     PREFIX
bad      deny     203.0.113.0/24
protect  protect  203.0.113.7/32
`)
	if q := f.last(t).Query; q != "ip=203.0.113.7" {
		t.Errorf("query %q", q)
	}
	r := f.run("acl", "check", "-o", "json", "203.0.113.7")
	wantOK(t, r)
	sameJSON(t, r.stdout, checkJSON)
}

func TestACLCheckWithoutMatches(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"GET /v1/acl/check": {body: `{"ip":"198.51.100.1","verdict":"pass","reason":"no_match","lists":null}`}})
	wantStdout(t, f.run("acl", "check", "198.51.100.1"), "ip       198.51.100.1\nverdict  pass\nreason   no_match\n")
	r := f.run("acl", "check", "-o", "json", "198.51.100.1")
	wantOK(t, r)
	if !strings.Contains(r.stdout, `"lists": []`) {
		t.Errorf("JSON without matches has no empty lists array:\n%s", r.stdout)
	}
}
