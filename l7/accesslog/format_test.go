package accesslog

import (
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"
)

// knownEntry is a request whose every field is set, with a quote in the
// URI and an upper-case Host with a port.
func knownEntry() Entry {
	return Entry{
		Time:       time.Date(2026, time.November, 24, 10, 0, 0, 0, time.UTC),
		RemoteAddr: "192.0.2.10:54321",
		Method:     "GET", Host: "WWW.Example.com:8443", URI: `/search?q="x"`, Proto: "HTTP/1.1",
		Status: 200, RequestLength: 212, BytesSent: 5390, BodyBytesSent: 5120,
		Duration: 123456789 * time.Nanosecond,
		Upstream: "web", UpstreamAddr: "10.0.0.5:8080", UpstreamTime: 45600 * time.Microsecond,
		Referer: "https://example.com/", UserAgent: "curl/8.5.0",
		VServer: "www", Location: "search", TLS: "TLSv1.3",
	}
}

func format(t *testing.T, cfg Config, e Entry) string {
	t.Helper()
	f, err := newFormatter(cfg)
	if err != nil {
		t.Fatalf("newFormatter(%+v): %v", cfg, err)
	}
	return string(f.append(nil, &e))
}

func TestCombinedLineIsNginxs(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Entry)
		want string
	}{
		{"known entry", func(*Entry) {},
			`192.0.2.10 - - [24/Nov/2026:10:00:00 +0000] "GET /search?q=\x22x\x22 HTTP/1.1" 200 5120 "https://example.com/" "curl/8.5.0"`},
		{"no referer, no user agent, no response", func(e *Entry) {
			e.Referer, e.UserAgent, e.Status, e.BytesSent, e.BodyBytesSent = "", "", 0, 0, 0
		}, `192.0.2.10 - - [24/Nov/2026:10:00:00 +0000] "GET /search?q=\x22x\x22 HTTP/1.1" 000 0 "-" "-"`},
		{"IPv6 client, local time zone", func(e *Entry) {
			e.RemoteAddr = "[2001:db8::1]:443"
			e.Time = e.Time.In(time.FixedZone("CET", 3600))
		}, `2001:db8::1 - - [24/Nov/2026:11:00:00 +0100] "GET /search?q=\x22x\x22 HTTP/1.1" 200 5120 "https://example.com/" "curl/8.5.0"`},
		{"control bytes, backslash, UTF-8 escaped", func(e *Entry) {
			e.UserAgent = "a\tb\\c\x7fé"
			e.URI = "/\r\n"
		}, `192.0.2.10 - - [24/Nov/2026:10:00:00 +0000] "GET /\x0D\x0A HTTP/1.1" 200 5120 "https://example.com/" "a\x09b\x5Cc\x7F\xC3\xA9"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := knownEntry()
			tt.edit(&e)
			for _, f := range []string{"", "combined"} {
				if got := format(t, Config{Format: f}, e); got != tt.want {
					t.Errorf("format %q:\n got %s\nwant %s", f, got, tt.want)
				}
			}
		})
	}
}

func TestJSONLine(t *testing.T) {
	e := knownEntry()
	got := format(t, Config{Format: "json"}, e)
	want := `{"time":"2026-11-24T10:00:00.000Z","remote_addr":"192.0.2.10","remote_port":54321,` +
		`"method":"GET","host":"WWW.Example.com:8443","uri":"/search?q=\"x\"","proto":"HTTP/1.1",` +
		`"status":200,"bytes_in":212,"bytes_out":5390,"body_bytes_sent":5120,"duration":0.123457,"upstream":"web",` +
		`"upstream_addr":"10.0.0.5:8080","upstream_time":0.0456,"referer":"https://example.com/",` +
		`"user_agent":"curl/8.5.0","vserver":"www","location":"search","tls":"TLSv1.3"}`
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}

	// Whatever the client sends, the line stays one valid JSON object.
	e.UserAgent = "a\"b\\c\n\x01\xff é"
	e.URI = "/\u2028"
	line := format(t, Config{Format: "json"}, e)
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if m["user_agent"] != "a\"b\\c\n\x01\ufffd é" || m["uri"] != "/\u2028" || strings.ContainsRune(line, '\n') {
		t.Errorf("escaping: %s", line)
	}
	if m["duration"] != 0.123457 || m["status"] != 200.0 {
		t.Errorf("numbers: %s", line)
	}
}

func TestTemplateEveryVariable(t *testing.T) {
	names := Variables()
	sort.Strings(names)
	var tmpl strings.Builder
	for _, n := range names {
		tmpl.WriteString(n + "=$" + n + "\n")
	}
	want := map[string]string{
		"body_bytes_sent":        "5120",
		"bytes_sent":             "5390",
		"host":                   "www.example.com",
		"http_host":              "WWW.Example.com:8443",
		"http_referer":           "https://example.com/",
		"http_user_agent":        "curl/8.5.0",
		"location":               "search",
		"msec":                   "1795514400.000",
		"remote_addr":            "192.0.2.10",
		"remote_port":            "54321",
		"remote_user":            "-",
		"request":                `GET /search?q=\x22x\x22 HTTP/1.1`,
		"request_length":         "212",
		"request_method":         "GET",
		"request_time":           "0.123",
		"request_uri":            `/search?q=\x22x\x22`,
		"scheme":                 "https",
		"server_protocol":        "HTTP/1.1",
		"ssl_protocol":           "TLSv1.3",
		"status":                 "200",
		"time_iso8601":           "2026-11-24T10:00:00+00:00",
		"time_local":             "24/Nov/2026:10:00:00 +0000",
		"tls":                    "TLSv1.3",
		"upstream":               "web",
		"upstream_addr":          "10.0.0.5:8080",
		"upstream_response_time": "0.045",
		"vserver":                "www",
	}
	if len(want) != len(names) {
		t.Fatalf("the test knows %d variables, the package %d: %v", len(want), len(names), names)
	}
	var wantOut strings.Builder
	for _, n := range names {
		wantOut.WriteString(n + "=" + want[n] + "\n")
	}
	got := format(t, Config{Format: "template", Template: tmpl.String()}, knownEntry())
	if got != wantOut.String() {
		t.Errorf("\n got:\n%s\nwant:\n%s", got, wantOut.String())
	}

	// Without TLS, upstream or anything optional: nginx's "-".
	e := Entry{Time: knownEntry().Time, RemoteAddr: "[::1]:80", Host: "[::1]:80", Status: 404}
	got = format(t, Config{Format: "template",
		Template: "${remote_addr}:$remote_port $host $scheme $tls $upstream_addr $upstream_response_time $upstream $request $status $request_time"}, e)
	if want := "::1:80 ::1 http - - - - - 404 0.000"; got != want {
		t.Errorf("empty entry:\n got %s\nwant %s", got, want)
	}
}

func TestTemplateErrors(t *testing.T) {
	tests := []struct {
		tmpl, want string
		unknown    bool
	}{
		{`$remote_addr $http_x_forwarded_for`, "$http_x_forwarded_for", true},
		{`${nope}`, "$nope", true},
		{`cost $ 5`, "offset 5", false},
		{`${remote_addr`, "unterminated", false},
	}
	for _, tt := range tests {
		_, err := newFormatter(Config{Format: "template", Template: tt.tmpl})
		if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, ErrUnknownVariable) != tt.unknown {
			t.Errorf("%q: err = %v; want one naming %q (unknown variable: %v)", tt.tmpl, err, tt.want, tt.unknown)
		}
		cfg := Config{Enabled: true, Format: "template", Template: tt.tmpl, Path: "/tmp/x"}
		if err := cfg.Validate(); err == nil {
			t.Errorf("%q: Validate accepted it", tt.tmpl)
		}
	}
	if _, err := newFormatter(Config{Format: "template"}); err == nil {
		t.Error("format template without a template: no error")
	}
	if got := format(t, Config{Format: "template", Template: "no variables: 100%"}, knownEntry()); got != "no variables: 100%" {
		t.Errorf("literal template = %q", got)
	}
}

func TestSplitAddr(t *testing.T) {
	for in, want := range map[string][2]string{
		"192.0.2.1:80":     {"192.0.2.1", "80"},
		"[2001:db8::1]:80": {"2001:db8::1", "80"},
		"2001:db8::1":      {"2001:db8::1", ""},
		"[::1]":            {"::1", ""},
		"host":             {"host", ""},
		"":                 {"", ""},
	} {
		if ip, port := splitAddr(in); ip != want[0] || port != want[1] {
			t.Errorf("splitAddr(%q) = %q, %q; want %q, %q", in, ip, port, want[0], want[1])
		}
	}
}
