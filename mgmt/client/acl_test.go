package client

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// lineSource generates n list lines on the fly, so a test can upload a
// million entries without holding them.
type lineSource struct {
	n, next int
	buf     []byte
}

func (s *lineSource) Read(p []byte) (int, error) {
	for len(s.buf) < len(p) && s.next < s.n {
		s.buf = fmt.Appendf(s.buf, "10.%d.%d.%d\n", s.next>>16&255, s.next>>8&255, s.next&255)
		s.next++
	}
	if len(s.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

func TestSyncListStreamsAMillionLines(t *testing.T) {
	const lines = 1_000_000
	type seen struct {
		method, path, kind, ctype, ifMatch string
		chunked                            bool
		lines                              int
	}
	got := make(chan seen, 1)
	c := serve(t, "", func(w http.ResponseWriter, r *http.Request) {
		s := seen{method: r.Method, path: r.URL.Path, kind: r.URL.Query().Get("kind"),
			ctype: r.Header.Get("Content-Type"), ifMatch: r.Header.Get("If-Match"),
			chunked: r.ContentLength == -1}
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			s.lines++
		}
		got <- s
		w.Header().Set("ETag", `"8"`)
		fmt.Fprintf(w, `{"name":"bad","kind":"allow","version":"8","added":%d,"removed":2,"entries":%d,"duration_ms":12.3}`, s.lines, s.lines)
	})
	r, err := c.SyncList(testContext(t), "bad", "allow", &lineSource{n: lines}, "7")
	if err != nil {
		t.Fatal(err)
	}
	want := SyncResult{Name: "bad", Kind: "allow", Version: "8", Added: lines, Removed: 2, Entries: lines, DurationMS: 12.3}
	if r != want {
		t.Errorf("SyncList = %+v, want %+v", r, want)
	}
	s := <-got
	if s.method != "PUT" || s.path != "/v1/acl/lists/bad" || s.kind != "allow" || s.lines != lines {
		t.Errorf("server saw %+v", s)
	}
	if !strings.HasPrefix(s.ctype, "text/plain") || s.ifMatch != `"7"` || !s.chunked {
		t.Errorf("server saw Content-Type %q, If-Match %q, chunked %v; want text/plain, \"7\", a streamed body", s.ctype, s.ifMatch, s.chunked)
	}
}

// TestSyncListSendsBeforeTheBodyEnds shows the body is streamed: the server
// reads the first line while the client has not yet produced the second.
func TestSyncListSendsBeforeTheBodyEnds(t *testing.T) {
	firstLine := make(chan string, 1)
	c := serve(t, "", func(w http.ResponseWriter, r *http.Request) {
		br := bufio.NewReader(r.Body)
		l, _ := br.ReadString('\n')
		firstLine <- l
		rest, _ := io.ReadAll(br)
		fmt.Fprintf(w, `{"name":"x","kind":"deny","version":"1","added":%d,"entries":%d}`, 1+strings.Count(string(rest), "\n"), 1+strings.Count(string(rest), "\n"))
	})
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := c.SyncList(testContext(t), "x", "", pr, "")
		done <- err
	}()
	io.WriteString(pw, "192.0.2.1\n")
	select {
	case l := <-firstLine:
		if l != "192.0.2.1\n" {
			t.Errorf("server read %q first", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not get the first line before the body ended")
	}
	io.WriteString(pw, "192.0.2.2\n")
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSyncListTooLargeIsAnAPIError(t *testing.T) {
	const limit = 64 << 10
	c := serve(t, "", func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, limit))
		if err == nil {
			io.WriteString(w, `{"name":"big","kind":"deny","version":"1"}`)
			return
		}
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		fmt.Fprintf(w, `{"error":{"code":"body_too_large","message":"request body exceeds %d bytes"}}`, limit)
	})
	_, err := c.SyncList(testContext(t), "big", "", &lineSource{n: 200_000}, "")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 413 || ae.Code != "body_too_large" {
		t.Fatalf("SyncList of an oversized body: %v, want a 413 body_too_large APIError", err)
	}
}

// recorded is what a fake server saw of one request.
type recorded struct {
	Method, Path, Query, IfMatch, Accept, ContentType, Body string
}

// recorder answers every request with status and body, and keeps what it saw.
func recorder(t *testing.T, status int, header http.Header, body string) (*Client, *recorded) {
	rec := &recorded{}
	c := serve(t, "", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*rec = recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("If-Match"), r.Header.Get("Accept"),
			r.Header.Get("Content-Type"), string(b)}
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
	return c, rec
}

func TestPatchListSendsAddAndRemove(t *testing.T) {
	c, rec := recorder(t, 200, nil, `{"name":"bad","kind":"deny","version":"9","added":2,"removed":0,"entries":125,"duration_ms":0.4}`)
	r, err := c.PatchList(testContext(t), "bad", "", []string{"198.51.100.0/24", "2001:db8::1"}, nil, "*")
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != "9" || r.Added != 2 || r.Entries != 125 {
		t.Errorf("PatchList = %+v", r)
	}
	var body map[string][]string
	if err := json.Unmarshal([]byte(rec.Body), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	want := map[string][]string{"add": {"198.51.100.0/24", "2001:db8::1"}, "remove": {}}
	if rec.Method != "PATCH" || rec.Path != "/v1/acl/lists/bad" || rec.IfMatch != "*" ||
		rec.ContentType != "application/json" || !reflect.DeepEqual(body, want) {
		t.Errorf("server saw %+v", rec)
	}
}

func TestIfMatchIsQuotedOnce(t *testing.T) {
	for in, want := range map[string]string{"7": `"7"`, `"7"`: `"7"`, "*": "*", "": ""} {
		c, rec := recorder(t, 204, nil, "")
		if err := c.DeleteList(testContext(t), "bad", in); err != nil {
			t.Fatal(err)
		}
		if rec.Method != "DELETE" || rec.IfMatch != want {
			t.Errorf("DeleteList(ifMatch %q) sent %s If-Match %q, want %q", in, rec.Method, rec.IfMatch, want)
		}
	}
}

func TestDeleteMissingListIsNotFound(t *testing.T) {
	c, _ := recorder(t, 404, nil, `{"error":{"code":"not_found","message":"no list \"gone\""}}`)
	err := c.DeleteList(testContext(t), "gone", "")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Code != "not_found" {
		t.Errorf("DeleteList of a missing list: %v", err)
	}
}

func TestGetListAndWriteList(t *testing.T) {
	c, rec := recorder(t, 200, http.Header{"ETag": {`"7"`}}, `{"name":"bad","kind":"deny","version":"7","entries":["10.0.0.0/8","2001:db8::/32"]}`)
	l, err := c.GetList(testContext(t), "bad")
	if err != nil {
		t.Fatal(err)
	}
	want := List{Name: "bad", Kind: "deny", Version: "7", Entries: []string{"10.0.0.0/8", "2001:db8::/32"}}
	if !reflect.DeepEqual(l, want) || rec.Accept != "application/json" {
		t.Errorf("GetList = %+v (Accept %q)", l, rec.Accept)
	}

	c, rec = recorder(t, 200, http.Header{"ETag": {`"7"`}}, "10.0.0.0/8\n2001:db8::/32\n")
	var b strings.Builder
	v, err := c.WriteList(testContext(t), "bad", &b)
	if err != nil {
		t.Fatal(err)
	}
	if v != "7" || b.String() != "10.0.0.0/8\n2001:db8::/32\n" || rec.Accept != "text/plain" {
		t.Errorf("WriteList = %q, %q (Accept %q)", v, b.String(), rec.Accept)
	}
}

func TestCheckEscapesTheAddress(t *testing.T) {
	c, rec := recorder(t, 200, nil, `{"ip":"2001:db8::7","verdict":"drop","reason":"acl_deny","lists":[{"name":"bad","kind":"deny","prefix":"2001:db8::/32"}]}`)
	r, err := c.Check(testContext(t), "2001:db8::7")
	if err != nil {
		t.Fatal(err)
	}
	want := Check{IP: "2001:db8::7", Verdict: "drop", Reason: "acl_deny", Lists: []CheckMatch{{Name: "bad", Kind: "deny", Prefix: "2001:db8::/32"}}}
	if !reflect.DeepEqual(r, want) || rec.Path != "/v1/acl/check" || rec.Query != "ip=2001%3Adb8%3A%3A7" {
		t.Errorf("Check = %+v; server saw %+v", r, rec)
	}
}

func TestSetPolicyAndProtect(t *testing.T) {
	c, rec := recorder(t, 200, nil, `{"mode":"allow"}`)
	p, err := c.SetPolicy(testContext(t), "allow")
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != "allow" || rec.Method != "PUT" || rec.Path != "/v1/acl/policy" || rec.Body != `{"mode":"allow"}` {
		t.Errorf("SetPolicy = %+v; server saw %+v", p, rec)
	}

	c, rec = recorder(t, 200, nil, `{"prefixes":[]}`)
	pr, err := c.SetProtect(testContext(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.Prefixes) != 0 || rec.Path != "/v1/acl/protect" || rec.Body != `{"prefixes":[]}` {
		t.Errorf("SetProtect(nil) = %+v; server saw %+v", pr, rec)
	}
}

func TestACLDecodesLists(t *testing.T) {
	c, _ := recorder(t, 200, nil, `{"policy":"deny","protect":["192.0.2.0/24"],"lists":[{"name":"bad","kind":"deny","entries":123,"version":"7"}]}`)
	a, err := c.ACL(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	want := ACL{Policy: "deny", Protect: []string{"192.0.2.0/24"}, Lists: []ListInfo{{Name: "bad", Kind: "deny", Entries: 123, Version: "7"}}}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("ACL = %+v, want %+v", a, want)
	}
}
