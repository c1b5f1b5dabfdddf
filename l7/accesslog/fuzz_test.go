package accesslog

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzEntryFormats writes entries whose client-given fields (method, host,
// URI, referer, user agent, remote address) hold arbitrary bytes, in each
// format: a line is never broken by what a client sent (a combined or
// template line has no control byte but the template's own, and is valid
// UTF-8), and a JSON line is one valid object with the fields as they were
// (invalid UTF-8 replaced as encoding/json replaces it).
func FuzzEntryFormats(f *testing.F) {
	f.Add("GET", "WWW.Example.com:8443", `/search?q="x"`, "https://example.com/", "curl/8.5.0", "192.0.2.10:54321", 200)
	f.Add("G\x00T", "h\nost", "/\r\n\x7f\xff", "\\\"", "a\tb\u2028", "[2001:db8::1]:443", 0)
	f.Add("", "", "", "", "", "", -1)
	f.Add("POST", "é", "/\xc3", "\xed\xa0\x80", "\"}", "garbage", 1000)
	all := ""
	for _, n := range Variables() {
		all += n + "=$" + n + " "
	}
	formats := map[string]formatter{}
	for name, c := range map[string]Config{"combined": {}, "json": {Format: "json"}, "template": {Format: "template", Template: all}} {
		fm, err := newFormatter(c)
		if err != nil {
			f.Fatal(err)
		}
		formats[name] = fm
	}
	f.Fuzz(func(t *testing.T, method, host, uri, referer, ua, remote string, status int) {
		e := knownEntry()
		e.Method, e.Host, e.URI, e.Referer, e.UserAgent, e.RemoteAddr, e.Status = method, host, uri, referer, ua, remote, status
		for name, fm := range formats {
			line := string(fm.append(nil, &e))
			if name == "json" {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("json: %v: %s", err, line)
				}
				if m["uri"] != asJSON(uri) || m["user_agent"] != asJSON(ua) || m["method"] != asJSON(method) {
					t.Fatalf("json: method %q, uri %q, user agent %q from %q, %q, %q", m["method"], m["uri"], m["user_agent"], method, uri, ua)
				}
				continue
			}
			if !utf8.ValidString(line) {
				t.Fatalf("%s: not UTF-8: %q", name, line)
			}
			for _, r := range line {
				if r < 0x20 || r == 0x7f {
					t.Fatalf("%s: a control byte %q in %q", name, r, line)
				}
			}
		}
	})
}

// asJSON is s as encoding/json writes and reads it back.
func asJSON(s string) string {
	b, _ := json.Marshal(s)
	var back string
	_ = json.Unmarshal(b, &back)
	return back
}
