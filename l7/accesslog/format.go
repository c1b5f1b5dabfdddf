package accesslog

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// ErrUnknownVariable is returned (wrapped, with the variable's name) for a
// template that uses a variable this package does not know.
var ErrUnknownVariable = errors.New("unknown variable")

// Combined is nginx's predefined "combined" log format.
const Combined = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`

// formatter appends one entry, without its newline, to dst.
type formatter interface {
	append(dst []byte, e *Entry) []byte
}

// newFormatter compiles the format a configuration names.
func newFormatter(c Config) (formatter, error) {
	switch c.Format {
	case "", "combined":
		return compileTemplate(Combined)
	case "json":
		return jsonFormat{}, nil
	case "template":
		if c.Template == "" {
			return nil, errors.New(`format "template" needs a template`)
		}
		return compileTemplate(c.Template)
	}
	return nil, fmt.Errorf("unknown format %q: want combined, json or template", c.Format)
}

// The template variables.
const (
	vRemoteAddr = iota + 1
	vRemotePort
	vRemoteUser
	vTimeLocal
	vTimeISO8601
	vMsec
	vRequest
	vStatus
	vBodyBytesSent
	vBytesSent
	vRequestLength
	vRequestTime
	vUpstreamAddr
	vUpstreamResponseTime
	vHTTPReferer
	vHTTPUserAgent
	vHTTPHost
	vHost
	vRequestMethod
	vRequestURI
	vServerProtocol
	vScheme
	vVServer
	vLocation
	vUpstream
	vTLS
)

// variables maps the names a template may use to what they print. The
// names and their output follow nginx's where nginx has one.
var variables = map[string]int{
	"remote_addr":            vRemoteAddr, // client address without the port
	"remote_port":            vRemotePort,
	"remote_user":            vRemoteUser, // always "-": the proxy does no basic auth
	"time_local":             vTimeLocal,  // 24/Nov/2026:10:00:00 +0000
	"time_iso8601":           vTimeISO8601,
	"msec":                   vMsec, // Unix seconds with milliseconds
	"request":                vRequest,
	"status":                 vStatus,
	"body_bytes_sent":        vBodyBytesSent,
	"bytes_sent":             vBytesSent,     // the whole response: head and body
	"request_length":         vRequestLength, // the whole request: head and body
	"request_time":           vRequestTime,   // seconds with milliseconds
	"upstream_addr":          vUpstreamAddr,
	"upstream_response_time": vUpstreamResponseTime, // seconds to the upstream's response header
	"http_referer":           vHTTPReferer,
	"http_user_agent":        vHTTPUserAgent,
	"http_host":              vHTTPHost, // the Host header as sent
	"host":                   vHost,     // lowercase, without the port
	"request_method":         vRequestMethod,
	"request_uri":            vRequestURI,
	"server_protocol":        vServerProtocol,
	"scheme":                 vScheme,
	"vserver":                vVServer,
	"location":               vLocation,
	"upstream":               vUpstream,
	"tls":                    vTLS,
	"ssl_protocol":           vTLS,
}

// Variables returns the names a template may use, without the "$".
func Variables() []string {
	out := make([]string, 0, len(variables))
	for name := range variables {
		out = append(out, name)
	}
	return out
}

// part is a piece of a compiled template: literal text, then a variable
// (0 for none).
type part struct {
	lit string
	v   int
}

// template is a compiled nginx-style log_format line.
type template []part

// compileTemplate parses text with $name and ${name} variables. It returns
// an error wrapping ErrUnknownVariable that names the first unknown one, or
// one that gives the offset of a "$" not followed by a name.
func compileTemplate(text string) (template, error) {
	var t template
	lit := 0
	for i := 0; i < len(text); {
		if text[i] != '$' {
			i++
			continue
		}
		start := i
		i++
		braced := i < len(text) && text[i] == '{'
		if braced {
			i++
		}
		n := i
		for i < len(text) && isNameByte(text[i]) {
			i++
		}
		name := text[n:i]
		if braced {
			if i >= len(text) || text[i] != '}' {
				return nil, fmt.Errorf("template: unterminated ${ at offset %d", start)
			}
			i++
		}
		if name == "" {
			return nil, fmt.Errorf("template: $ without a variable name at offset %d", start)
		}
		v, ok := variables[name]
		if !ok {
			return nil, fmt.Errorf("template: %w $%s", ErrUnknownVariable, name)
		}
		t = append(t, part{lit: text[lit:start], v: v})
		lit = i
	}
	if lit < len(text) {
		t = append(t, part{lit: text[lit:]})
	}
	return t, nil
}

func isNameByte(b byte) bool {
	return b == '_' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}

func (t template) append(dst []byte, e *Entry) []byte {
	for _, p := range t {
		dst = append(dst, p.lit...)
		if p.v != 0 {
			dst = appendVar(dst, p.v, e)
		}
	}
	return dst
}

// appendVar writes one variable as nginx would: strings escaped (see
// appendEscaped), "-" for an empty value.
func appendVar(dst []byte, v int, e *Entry) []byte {
	switch v {
	case vRemoteAddr:
		ip, _ := splitAddr(e.RemoteAddr)
		return appendEscaped(dst, ip)
	case vRemotePort:
		_, port := splitAddr(e.RemoteAddr)
		return appendEscaped(dst, port)
	case vRemoteUser:
		return append(dst, '-')
	case vTimeLocal:
		return e.Time.AppendFormat(dst, "02/Jan/2006:15:04:05 -0700")
	case vTimeISO8601:
		return e.Time.AppendFormat(dst, "2006-01-02T15:04:05-07:00")
	case vMsec:
		return appendMillis(dst, e.Time.UnixMilli())
	case vRequest:
		if e.Method == "" && e.URI == "" && e.Proto == "" {
			return append(dst, '-')
		}
		dst = appendEscapedRaw(dst, e.Method)
		dst = append(dst, ' ')
		dst = appendEscapedRaw(dst, e.URI)
		dst = append(dst, ' ')
		return appendEscapedRaw(dst, e.Proto)
	case vStatus:
		if e.Status >= 0 && e.Status < 100 {
			dst = append(dst, '0'+byte(e.Status/100), '0'+byte(e.Status/10%10), '0'+byte(e.Status%10))
			return dst
		}
		return strconv.AppendInt(dst, int64(e.Status), 10)
	case vBodyBytesSent:
		return strconv.AppendInt(dst, e.BodyBytesSent, 10)
	case vBytesSent:
		return strconv.AppendInt(dst, e.BytesSent, 10)
	case vRequestLength:
		return strconv.AppendInt(dst, e.RequestLength, 10)
	case vRequestTime:
		return appendMillis(dst, e.Duration.Milliseconds())
	case vUpstreamAddr:
		return appendEscaped(dst, e.UpstreamAddr)
	case vUpstreamResponseTime:
		if e.UpstreamAddr == "" {
			return append(dst, '-')
		}
		return appendMillis(dst, e.UpstreamTime.Milliseconds())
	case vHTTPReferer:
		return appendEscaped(dst, e.Referer)
	case vHTTPUserAgent:
		return appendEscaped(dst, e.UserAgent)
	case vHTTPHost:
		return appendEscaped(dst, e.Host)
	case vHost:
		return appendLowerHost(dst, e.Host)
	case vRequestMethod:
		return appendEscaped(dst, e.Method)
	case vRequestURI:
		return appendEscaped(dst, e.URI)
	case vServerProtocol:
		return appendEscaped(dst, e.Proto)
	case vScheme:
		if e.TLS != "" {
			return append(dst, "https"...)
		}
		return append(dst, "http"...)
	case vVServer:
		return appendEscaped(dst, e.VServer)
	case vLocation:
		return appendEscaped(dst, e.Location)
	case vUpstream:
		return appendEscaped(dst, e.Upstream)
	case vTLS:
		return appendEscaped(dst, e.TLS)
	}
	return dst
}

// splitAddr splits "ip:port" or "[ipv6]:port" without allocating; an
// address without a port is all ip.
func splitAddr(a string) (ip, port string) {
	if len(a) > 0 && a[0] == '[' {
		for i := 1; i < len(a); i++ {
			if a[i] == ']' {
				if i+1 < len(a) && a[i+1] == ':' {
					return a[1:i], a[i+2:]
				}
				return a[1:i], ""
			}
		}
		return a, ""
	}
	colon := -1
	for i := 0; i < len(a); i++ {
		if a[i] == ':' {
			if colon >= 0 {
				return a, "" // a bare IPv6 address
			}
			colon = i
		}
	}
	if colon < 0 {
		return a, ""
	}
	return a[:colon], a[colon+1:]
}

// appendLowerHost writes the host part of a Host header in lowercase, as
// nginx's $host.
func appendLowerHost(dst []byte, h string) []byte {
	h, _ = splitAddr(h)
	if h == "" {
		return append(dst, '-')
	}
	for i := 0; i < len(h); i++ {
		switch b := h[i]; {
		case logEscape[b]:
			dst = append(dst, '\\', 'x', upperHex[b>>4], upperHex[b&0xf])
		case 'A' <= b && b <= 'Z':
			dst = append(dst, b+'a'-'A')
		default:
			dst = append(dst, b)
		}
	}
	return dst
}

// appendMillis writes a count of milliseconds as seconds with three
// decimals: 1234 → 1.234.
func appendMillis(dst []byte, ms int64) []byte {
	if ms < 0 {
		ms = 0
	}
	dst = strconv.AppendInt(dst, ms/1000, 10)
	r := ms % 1000
	return append(dst, '.', '0'+byte(r/100), '0'+byte(r/10%10), '0'+byte(r%10))
}

// logEscape marks the bytes nginx writes as \xHH in a log line: control
// bytes, '"', '\\', DEL and everything above ASCII.
var logEscape = func() (t [256]bool) {
	for b := range 256 {
		t[b] = b < 0x20 || b == '"' || b == '\\' || b >= 0x7f
	}
	return t
}()

const upperHex = "0123456789ABCDEF"

// appendEscaped writes s as nginx writes a variable in an access log: "-"
// when empty, the bytes of logEscape as \xHH.
func appendEscaped(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, '-')
	}
	return appendEscapedRaw(dst, s)
}

func appendEscapedRaw(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		if b := s[i]; logEscape[b] {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'x', upperHex[b>>4], upperHex[b&0xf])
			start = i + 1
		}
	}
	return append(dst, s[start:]...)
}

// jsonFormat writes one JSON object per entry, with the same keys in the
// same order every time; durations are seconds (microsecond resolution).
type jsonFormat struct{}

func (jsonFormat) append(dst []byte, e *Entry) []byte {
	ip, port := splitAddr(e.RemoteAddr)
	p, _ := strconv.Atoi(port)
	dst = append(dst, `{"time":"`...)
	dst = e.Time.AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
	dst = append(dst, `","remote_addr":`...)
	dst = appendJSONString(dst, ip)
	dst = append(dst, `,"remote_port":`...)
	dst = strconv.AppendInt(dst, int64(p), 10)
	dst = append(dst, `,"method":`...)
	dst = appendJSONString(dst, e.Method)
	dst = append(dst, `,"host":`...)
	dst = appendJSONString(dst, e.Host)
	dst = append(dst, `,"uri":`...)
	dst = appendJSONString(dst, e.URI)
	dst = append(dst, `,"proto":`...)
	dst = appendJSONString(dst, e.Proto)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(e.Status), 10)
	dst = append(dst, `,"bytes_in":`...)
	dst = strconv.AppendInt(dst, e.RequestLength, 10)
	dst = append(dst, `,"bytes_out":`...)
	dst = strconv.AppendInt(dst, e.BytesSent, 10)
	dst = append(dst, `,"body_bytes_sent":`...)
	dst = strconv.AppendInt(dst, e.BodyBytesSent, 10)
	dst = append(dst, `,"duration":`...)
	dst = appendSeconds(dst, e.Duration)
	dst = append(dst, `,"upstream":`...)
	dst = appendJSONString(dst, e.Upstream)
	dst = append(dst, `,"upstream_addr":`...)
	dst = appendJSONString(dst, e.UpstreamAddr)
	dst = append(dst, `,"upstream_time":`...)
	dst = appendSeconds(dst, e.UpstreamTime)
	dst = append(dst, `,"referer":`...)
	dst = appendJSONString(dst, e.Referer)
	dst = append(dst, `,"user_agent":`...)
	dst = appendJSONString(dst, e.UserAgent)
	dst = append(dst, `,"vserver":`...)
	dst = appendJSONString(dst, e.VServer)
	dst = append(dst, `,"location":`...)
	dst = appendJSONString(dst, e.Location)
	dst = append(dst, `,"tls":`...)
	dst = appendJSONString(dst, e.TLS)
	return append(dst, '}')
}

// appendSeconds writes d in seconds, rounded to the microsecond, in the
// shortest decimal form: 0.0125, 1.5, 0.
func appendSeconds(dst []byte, d time.Duration) []byte {
	if d < 0 {
		d = 0
	}
	us := d.Round(time.Microsecond) / time.Microsecond
	return strconv.AppendFloat(dst, float64(us)/1e6, 'f', -1, 64)
}

// appendJSONString writes s as a JSON string; invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', upperHex[b>>4], upperHex[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

var (
	_ formatter = template(nil)
	_ formatter = jsonFormat{}
)
