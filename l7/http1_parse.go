package l7

// The HTTP/1.1 loop's parsers: request and answer heads read in place (every
// field a substring of the head's one string), chunk sizes, and the header
// helpers. They accept only what net/http would read the same way (see
// http1_fuzz_test.go); the loop leaves anything else to net/http.

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/net/http/httpguts"
)

// readHead returns the length of the head (through its empty line) at the
// start of br's buffer, reading more as needed; fill is called before each
// read that may block. A line ending in a bare LF is errHandOver: net/http
// accepts it leniently, this loop does not parse it.
func readHead(br *bufio.Reader, fill func(int) error) (int, error) {
	n, _, err := scanHead(br, fill, false)
	return n, err
}

// readUpstreamHead is readHead for an upstream's answer, which may end its
// lines in a bare LF (RFC 9112 2.2 lets a recipient accept one, and nginx
// does): bareLF says it did, for h1response.parse.
func readUpstreamHead(br *bufio.Reader, fill func(int) error) (n int, bareLF bool, err error) {
	return scanHead(br, fill, true)
}

func scanHead(br *bufio.Reader, fill func(int) error, lenient bool) (n int, bareLF bool, err error) {
	scanned := 0
	for {
		buf, _ := br.Peek(br.Buffered())
		for i := scanned; i < len(buf); i++ {
			if buf[i] != '\n' {
				continue
			}
			if i == 0 || buf[i-1] != '\r' {
				if !lenient {
					return 0, false, errHandOver
				}
				bareLF = true
				if i >= 1 && buf[i-1] == '\n' { // LF LF: the empty line
					return i + 1, true, nil
				}
				continue
			}
			if i >= 2 && buf[i-2] == '\n' && (bareLF || (i >= 3 && buf[i-3] == '\r')) {
				return i + 1, bareLF, nil
			}
		}
		scanned = len(buf)
		if len(buf) >= br.Size() {
			return 0, false, errHeadTooLarge
		}
		if err := fill(len(buf) + 1); err != nil {
			return 0, false, err
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return 0, false, err
		}
	}
}

// canonicalHead rewrites a head with bare-LF line ends or obs-fold
// (continuation lines) into the form the parsers read: every line ending
// in CRLF, each fold replaced by one space, as RFC 9112 5.2 has a proxy do
// before it forwards the answer. It refuses (ok false) a head without its
// empty line and a folded Content-Length or Transfer-Encoding: framing
// that another reader may join differently (net/http keeps a fold's
// trailing space in the value) is where a proxy and a client disagree on
// where a body ends.
func canonicalHead(head []byte) (_ string, ok bool) {
	var lines [][]byte
	for _, line := range bytes.Split(head, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case len(line) == 0: // the empty line: the end
			return string(append(bytes.Join(lines, []byte("\r\n")), "\r\n\r\n"...)), true
		case len(lines) > 1 && (line[0] == ' ' || line[0] == '\t'):
			// A fold: the field's value goes on after one space. (Not
			// after the status line: that is not a field.)
			last := &lines[len(lines)-1]
			if name, _, _ := bytes.Cut(*last, []byte(":")); bytes.EqualFold(name, []byte("content-length")) ||
				bytes.EqualFold(name, []byte("transfer-encoding")) {
				return "", false
			}
			*last = append(append(*last, ' '), bytes.TrimLeft(line, " \t")...)
		default:
			lines = append(lines, bytes.Clone(line))
		}
	}
	return "", false
}

// headCopy copies a head into *buf, grown only when a head is longer than
// any before, and returns the copy as a string. The string aliases *buf,
// so it and its substrings hold until the next headCopy into buf: a
// connection parses its next head only after it is done with the last one
// (what outlives it, an access log entry, takes copies: ownStrings).
// A head read this way costs no allocation.
func headCopy(buf *[]byte, head []byte) string {
	*buf = append((*buf)[:0], head...)
	return unsafe.String(unsafe.SliceData(*buf), len(*buf))
}

// ownStrings gives the strings one allocation of their own, for strings
// that alias a buffer (headCopy) and must outlive it.
func ownStrings(ss ...*string) {
	n := 0
	for _, s := range ss {
		n += len(*s)
	}
	b := make([]byte, 0, n)
	for _, s := range ss {
		b = append(b, *s...)
	}
	all := unsafe.String(unsafe.SliceData(b), len(b))
	for _, s := range ss {
		n := len(*s)
		*s, all = all[:n], all[n:]
	}
}

// h1request is a parsed request head; every string is a substring of
// head, which aliases buf (headCopy).
type h1request struct {
	buf                      []byte
	head                     string
	method, target, path     string
	host, userAgent, referer string
	forwarded                string   // the first Forwarded value
	xff                      []string // X-Forwarded-For values
	headers                  []h1field
	named                    []string // header names listed in Connection
	close                    bool
	length                   int64 // of the body (Content-Length, or a chunked body's data once read); 0 without one
	chunked                  bool  // Transfer-Encoding: chunked, the one coding the loop reads
	expect                   bool  // Expect: 100-continue, answered by the proxy (sendContinue)
	continued                bool  // the 100 (Continue) went out
}

type h1field struct{ name, value string }

// parse parses the n-byte head at the start of br's buffer and reports
// whether the loop serves the request (see the top of this file).
func (q *h1request) parse(br *bufio.Reader, n int) bool {
	buf, _ := br.Peek(n)
	*q = h1request{buf: q.buf, headers: q.headers[:0], named: q.named[:0], xff: q.xff[:0], head: headCopy(&q.buf, buf)}
	line, rest := cutLine(q.head)
	method, rem, ok := cutByte(line, ' ')
	if !ok || !isToken(method) {
		return false
	}
	target, proto, ok := cutByte(rem, ' ')
	if !ok || proto != "HTTP/1.1" || target == "" || target[0] != '/' {
		return false
	}
	q.method, q.target, q.path = method, target, target
	for i := 0; i < len(target); i++ {
		switch b := target[i]; {
		case b <= ' ' || b >= 0x7f || b == '%' || b == '#':
			return false // net/http decodes and judges these
		case b == '?' && q.path == target:
			q.path = target[:i]
		}
	}
	hosts, lengths := 0, 0
	for rest != "\r\n" {
		var name, value string
		if name, value, rest, ok = nextField(rest); !ok {
			return false
		}
		switch {
		case equalFold(name, "host"):
			hosts++
			q.host = value
		case equalFold(name, "content-length"):
			v, ok := parseLength(value)
			if !ok || lengths > 0 || q.chunked {
				return false // net/http judges repeated and bad lengths; framedTwice refuses both framings
			}
			q.length, lengths = v, 1
		case equalFold(name, "transfer-encoding"):
			if !equalFold(value, "chunked") || q.chunked || lengths > 0 {
				return false // other and repeated codings are net/http's to judge
			}
			q.chunked = true
			continue
		case equalFold(name, "expect"):
			if !equalFold(value, "100-continue") || q.expect {
				return false // net/http answers other expectations
			}
			q.expect = true
			continue
		case equalFold(name, "upgrade"):
			return false
		case equalFold(name, "connection"):
			var closing bool
			closing, _, q.named = connectionOptions(value, q.named)
			q.close = q.close || closing
			continue
		case equalFold(name, "x-forwarded-for"):
			q.xff = append(q.xff, value)
			continue
		case equalFold(name, "forwarded"):
			if q.forwarded == "" {
				q.forwarded = value
			}
			continue
		case equalFold(name, "x-forwarded-host"), equalFold(name, "x-forwarded-proto"):
			continue
		case equalFold(name, "user-agent"):
			if q.userAgent == "" {
				q.userAgent = value
			}
		case equalFold(name, "referer"):
			if q.referer == "" {
				q.referer = value
			}
		}
		if isHopByHop(name) {
			continue
		}
		q.headers = append(q.headers, h1field{name, value})
	}
	if hosts != 1 || !httpguts.ValidHostHeader(q.host) {
		return false
	}
	if len(q.named) > 0 {
		kept := q.headers[:0]
		for _, f := range q.headers {
			if !containsFold(q.named, f.name) {
				kept = append(kept, f)
			}
		}
		q.headers = kept
	}
	return true
}

// framedTwice reports whether the n-byte request head at the start of br's
// buffer has both Content-Length and Transfer-Encoding (the parser hands
// such a request over at the first of them, so it looks at them all).
func framedTwice(br *bufio.Reader, n int) bool {
	buf, _ := br.Peek(n)
	_, rest := cutLine(string(buf))
	var length, coding bool
	for rest != "\r\n" {
		name, _, next, ok := nextField(rest)
		if !ok {
			return false
		}
		length = length || equalFold(name, "content-length")
		coding = coding || equalFold(name, "transfer-encoding")
		rest = next
	}
	return length && coding
}

// h1response is a parsed upstream response head; strings are substrings
// of head, which aliases buf (headCopy) unless the head was rewritten
// (canonicalHead).
type h1response struct {
	buf      []byte
	head     string
	status   int
	reason   string
	headers  []h1field
	named    []string
	length   int64 // -1: not given
	chunked  bool  // Transfer-Encoding: chunked, relayed as it is
	close    bool  // the upstream closes after this answer
	noBody   bool  // HEAD, 1xx, 204, 304
	bodyOpen bool  // neither length nor chunked: the body ends when the upstream closes
}

// parse parses the n-byte head at the start of br's buffer (readUpstreamHead
// says whether its lines may end in a bare LF). A head with bare LFs or
// with folded lines (obs-fold) is parsed in its canonical form.
func (r *h1response) parse(br *bufio.Reader, n int, bareLF bool) error {
	buf, _ := br.Peek(n)
	if bareLF {
		return r.parseCanonical(buf)
	}
	err := r.parseHead(headCopy(&r.buf, buf))
	if err != nil && (bytes.Contains(buf, []byte("\n ")) || bytes.Contains(buf, []byte("\n\t"))) {
		return r.parseCanonical(buf)
	}
	return err
}

func (r *h1response) parseCanonical(buf []byte) error {
	head, ok := canonicalHead(buf)
	if !ok {
		return errBadUpstream
	}
	return r.parseHead(head)
}

func (r *h1response) parseHead(head string) error {
	*r = h1response{buf: r.buf, headers: r.headers[:0], named: r.named[:0], head: head, length: -1}
	line, rest := cutLine(r.head)
	proto, rem, ok := cutByte(line, ' ')
	if !ok || (proto != "HTTP/1.1" && proto != "HTTP/1.0") || len(rem) < 3 {
		return errBadUpstream
	}
	code, err := strconv.Atoi(rem[:3])
	if err != nil || code < 100 || code > 999 || (len(rem) > 3 && rem[3] != ' ') {
		return errBadUpstream
	}
	r.status, r.close = code, proto == "HTTP/1.0"
	if len(rem) > 4 {
		r.reason = rem[4:]
	}
	for rest != "\r\n" {
		var name, value string
		if name, value, rest, ok = nextField(rest); !ok {
			return errBadUpstream
		}
		switch {
		case equalFold(name, "content-length"):
			v, ok := parseLength(value)
			if !ok || (r.length >= 0 && r.length != v) {
				return errBadUpstream
			}
			r.length = v
		case equalFold(name, "transfer-encoding"):
			if !equalFold(value, "chunked") || r.chunked {
				return errBadUpstream // as net/http: chunked is the one coding proxies relay
			}
			r.chunked = true
			continue
		case equalFold(name, "connection"):
			var closing, keepAlive bool
			closing, keepAlive, r.named = connectionOptions(value, r.named)
			if keepAlive && !closing && proto == "HTTP/1.0" {
				r.close = false
			}
			r.close = r.close || closing
			continue
		}
		if isHopByHop(name) && !equalFold(name, "trailer") { // the trailers are relayed with the chunks
			continue
		}
		r.headers = append(r.headers, h1field{name, value})
	}
	if r.chunked && proto == "HTTP/1.0" {
		// RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
		// framing (net/http reads it to the close, a client may not).
		return errBadUpstream
	}
	r.noBody = code < 200 || code == 204 || code == 304
	if r.chunked {
		r.length = -1 // the chunks frame the body, not Content-Length
	}
	r.bodyOpen = !r.noBody && !r.chunked && r.length < 0
	if r.bodyOpen {
		r.close = true
	}
	return nil
}

// framed reports whether the client can tell where this answer ends
// without the connection closing.
func (r *h1response) framed(method string) bool {
	return method == "HEAD" || r.noBody || !r.bodyOpen
}

// chunkSize parses a chunk-size line without its end ("1a;ext=v").
func chunkSize(line []byte) (int64, bool) {
	var n int64
	digits := 0
	for _, b := range line {
		var v byte
		switch {
		case '0' <= b && b <= '9':
			v = b - '0'
		case 'a' <= b && b <= 'f':
			v = b - 'a' + 10
		case 'A' <= b && b <= 'F':
			v = b - 'A' + 10
		case b == ';' || b == ' ' || b == '\t':
			return n, digits > 0
		default:
			return 0, false
		}
		if digits++; digits > 15 {
			return 0, false
		}
		n = n<<4 | int64(v)
	}
	return n, digits > 0
}

// requestChunkSize parses a chunk-size line of a request body, without its
// CRLF: hex digits, then nothing or a chunk extension after ';'. Stricter
// than chunkSize (no whitespace, no CR), so that every body the loop relays
// net/http reads the same way: a framing two parsers read differently is how
// requests are smuggled.
func requestChunkSize(line []byte) (int64, bool) {
	digits, ext, _ := bytes.Cut(line, []byte(";"))
	if bytes.IndexByte(ext, '\r') >= 0 {
		return 0, false
	}
	for _, b := range digits {
		if !('0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F') {
			return 0, false
		}
	}
	return chunkSize(digits)
}

// trailerField reports whether a line of a chunked request's trailer section
// is a field net/http reads as one: a token, a colon, a value without
// control characters.
func trailerField(line []byte) bool {
	name, value, ok := cutByte(string(line), ':')
	return ok && isToken(name) && validValue(value)
}

// asRequest is the request as the upstream package's KeyFor reads it, built
// only for hash balancers.
func (q *h1request) asRequest(remote string) *http.Request {
	r := &http.Request{Method: q.method, Host: q.host, RequestURI: q.target, RemoteAddr: remote,
		URL: &url.URL{Path: q.path}, Header: make(http.Header, len(q.headers))}
	for _, f := range q.headers {
		r.Header.Add(f.name, f.value)
	}
	return r
}

// cutLine splits s after its first CRLF; the head's lines all have one
// (readHead made sure).
func cutLine(s string) (line, rest string) {
	i := strings.Index(s, "\r\n")
	return s[:i], s[i+2:]
}

// connectionOptions reads a Connection value: close, keep-alive, and the
// other headers it names, appended to named.
func connectionOptions(value string, named []string) (closing, keepAlive bool, _ []string) {
	for value != "" {
		var tok string
		tok, value, _ = cutByte(value, ',')
		switch tok = trimOWS(tok); {
		case equalFold(tok, "close"):
			closing = true
		case equalFold(tok, "keep-alive"):
			keepAlive = true
		case tok != "":
			named = append(named, tok)
		}
	}
	return closing, keepAlive, named
}

// parseLength parses a Content-Length value as net/http does: decimal
// digits only.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// nextField parses the header field on the first line of rest: a token
// name, a colon, a value without control characters, trimmed.
func nextField(rest string) (name, value, after string, ok bool) {
	line, after := cutLine(rest)
	name, value, ok = cutByte(line, ':')
	if !ok || !isToken(name) {
		return "", "", after, false
	}
	value = trimOWS(value)
	return name, value, after, validValue(value)
}

func cutByte(s string, sep byte) (before, after string, found bool) {
	if i := strings.IndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// isToken reports whether s is an RFC 9110 token (a method, a header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !httpguts.IsTokenRune(rune(s[i])) {
			return false
		}
	}
	return true
}

// validValue rejects control characters but horizontal tab.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; (b < ' ' && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

// equalFold is ASCII case-insensitive equality, lower being lower case.
func equalFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if b != lower[i] {
			return false
		}
	}
	return true
}

func containsFold(names []string, name string) bool {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func isHopByHop(name string) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "te")
	case 7:
		return equalFold(name, "trailer") || equalFold(name, "upgrade")
	case 10:
		return equalFold(name, "keep-alive") || equalFold(name, "connection")
	case 16:
		return equalFold(name, "proxy-connection")
	case 17:
		return equalFold(name, "transfer-encoding")
	case 18:
		return equalFold(name, "proxy-authenticate")
	case 19:
		return equalFold(name, "proxy-authorization")
	}
	return false
}
