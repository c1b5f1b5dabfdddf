package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

const listFile = "# bad actors\r\n10.0.0.0/8\r\n\r\n203.0.113.7   # scanner\r\n2001:db8::/32\r\n"

func TestACLSetStreamsTheFile(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"PUT /v1/acl/lists/bad": {body: syncJSON, header: map[string]string{"ETag": `"8"`}}})
	path := filepath.Join(t.TempDir(), "bad.txt")
	writeFile(t, path, listFile)
	wantStdout(t, f.run("acl", "set", "--kind", "deny", "--file", path, "--if-match", "7", "bad"), syncTable)
	req := f.last(t)
	if req.Method != "PUT" || req.Path != "/v1/acl/lists/bad" || req.Query != "kind=deny" {
		t.Errorf("sent %s %s?%s", req.Method, req.Path, req.Query)
	}
	if ct := req.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	if im := req.Header.Get("If-Match"); im != `"7"` {
		t.Errorf("If-Match %q, want \"7\"", im)
	}
	if req.Body != listFile {
		t.Errorf("body %q, want the file unchanged: %q", req.Body, listFile)
	}
	if !req.Chunked {
		t.Error("the body was sent with a Content-Length: it was read whole before sending")
	}
}

func TestACLSetFromStdin(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"PUT /v1/acl/lists/bad": {body: syncJSON}})
	r := sluice(listFile, "--api", f.url, "acl", "set", "-o", "json", "-f", "-", "bad")
	wantOK(t, r)
	sameJSON(t, r.stdout, syncJSON)
	req := f.last(t)
	if req.Body != listFile || req.Query != "" || req.Header.Get("If-Match") != "" {
		t.Errorf("sent body %q, query %q, If-Match %q", req.Body, req.Query, req.Header.Get("If-Match"))
	}
}

func TestACLSetBadLinesAreListed(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"PUT /v1/acl/lists/bad": {status: 400, body: `{"error":{"code":"invalid_entries",
		"message":"2 invalid lines; nothing was applied","details":[
		{"line":3,"text":"10.0.0.300","error":"ParseAddr(\"10.0.0.300\"): IPv4 field has value >255"},
		{"line":812345,"text":"10.0.0.1/8","error":"host bits set"}]}}`}})
	r := sluice("1.2.3.4\n\n10.0.0.300\n", "--api", f.url, "acl", "set", "-f", "-", "bad")
	want := `sluice: 400 invalid_entries: 2 invalid lines; nothing was applied
  line 3: "10.0.0.300": ParseAddr("10.0.0.300"): IPv4 field has value >255
  line 812345: "10.0.0.1/8": host bits set
`
	if r.code != 1 || r.stdout != "" || r.stderr != want {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and:\n%s", r.code, r.stdout, r.stderr, want)
	}
}

func TestACLSetVersionMismatch(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"PUT /v1/acl/lists/bad": {status: 412,
		body: `{"error":{"code":"version_mismatch","message":"If-Match does not match the current version \"9\""}}`}})
	r := sluice("1.2.3.4\n", "--api", f.url, "acl", "set", "--if-match", `"8"`, "-f", "-", "bad")
	if r.code != 1 || r.stderr != "sluice: 412 version_mismatch: If-Match does not match the current version \"9\"\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if im := f.last(t).Header.Get("If-Match"); im != `"8"` {
		t.Errorf("a quoted --if-match was sent as %q, want it unchanged", im)
	}
}

func TestACLSetMissingFile(t *testing.T) {
	f := newFakeAPI(t, nil)
	path := filepath.Join(t.TempDir(), "none.txt")
	r := f.run("acl", "set", "-f", path, "bad")
	if want := fmt.Sprintf("sluice: open %s: no such file or directory\n", path); r.code != 1 || r.stderr != want {
		t.Errorf("exit %d, stderr %q, want %q", r.code, r.stderr, want)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent for a missing file", n)
	}
}
