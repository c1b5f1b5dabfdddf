package upstream

import (
	"net"
	"net/http"
	"net/textproto"
	"strings"
)

// NeedsKey reports whether the balancer hashes a key, so a caller that
// has no http.Request at hand builds one only then.
func (p *Pool) NeedsKey() bool { return p.snap.Load().keyKind != keyNone }

// KeyFor extracts the hash key of r according to the pool's HashKey: the
// client's IP address (from r.RemoteAddr, without the port), r.RequestURI,
// the first value of a header, or the value of a cookie. A missing header
// or cookie gives "", and Pick sends such requests round-robin. For the
// other balancers KeyFor returns "" without looking at r.
func (p *Pool) KeyFor(r *http.Request) string {
	sn := p.snap.Load()
	switch sn.keyKind {
	case keyClientIP:
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			return host
		}
		return r.RemoteAddr
	case keyURI:
		if r.RequestURI != "" {
			return r.RequestURI
		}
		if r.URL != nil {
			return r.URL.RequestURI()
		}
	case keyHeader:
		if v := r.Header[sn.keyName]; len(v) > 0 {
			return v[0]
		}
	case keyCookie:
		return cookie(r.Header["Cookie"], sn.keyName)
	}
	return ""
}

// cookie returns the value of the first cookie called name in the Cookie
// header lines, without the quotes a value may have; unlike
// http.Request.Cookie it does not allocate.
func cookie(lines []string, name string) string {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return ""
}

func canonicalHeader(name string) string { return textproto.CanonicalMIMEHeaderKey(name) }
