package l7

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluicelb/sluice/l7/tlcp"
)

// loadedCert is a parsed Cert with the names it serves.
type loadedCert struct {
	name     string
	isDef    bool
	names    []string // lower case; *.example.com for wildcards
	tls      *tls.Certificate
	tlcp     *tlcp.Certificate
	notAfter time.Time
}

func loadCert(c Cert) (*loadedCert, error) {
	lc := &loadedCert{name: c.Name, isDef: c.Default}
	switch c.Kind {
	case CertTLS, "":
		if c.SignCert != "" || c.EncCert != "" {
			return nil, invalid("cert", c.Name, "kind", "sign/enc certificates are for kind tlcp")
		}
		pair, err := tls.X509KeyPair([]byte(c.CertPEM), []byte(c.KeyPEM))
		if err != nil {
			return nil, invalid("cert", c.Name, "cert/key", "%v", err)
		}
		leaf := pair.Leaf
		if leaf == nil {
			if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
				return nil, invalid("cert", c.Name, "cert", "%v", err)
			}
		}
		lc.tls, lc.names, lc.notAfter = &pair, certNames(leaf.DNSNames, leaf.Subject.CommonName), leaf.NotAfter
	case CertTLCP:
		if c.CertPEM != "" || c.KeyPEM != "" {
			return nil, invalid("cert", c.Name, "kind", "a tlcp certificate has sign_cert/sign_key and enc_cert/enc_key")
		}
		pair, err := tlcp.X509KeyPair([]byte(c.SignCert), []byte(c.SignKey), []byte(c.EncCert), []byte(c.EncKey))
		if err != nil {
			return nil, invalid("cert", c.Name, "sign/enc", "%v", err)
		}
		leaf := pair.Sign.Leaf
		if leaf == nil {
			return nil, invalid("cert", c.Name, "sign_cert", "no leaf certificate")
		}
		lc.tlcp, lc.names, lc.notAfter = &pair, certNames(leaf.DNSNames, leaf.Subject.CommonName), leaf.NotAfter
	default:
		return nil, invalid("cert", c.Name, "kind", "%q: want tls or tlcp", c.Kind)
	}
	return lc, nil
}

func certNames(dns []string, cn string) []string {
	if len(dns) == 0 && cn != "" {
		dns = []string{cn}
	}
	out := make([]string, len(dns))
	for i, n := range dns {
		out[i] = strings.ToLower(n)
	}
	return out
}

// certSet picks a certificate by SNI: an exact name, then a wildcard, then
// the default (the one marked default, else the first by name). It is
// immutable; the proxy swaps whole sets, so a replaced certificate applies
// to the next handshake and open connections keep theirs.
type certSet struct {
	exact, wild map[string]*loadedCert
	def         *loadedCert
}

func newCertSet(certs []*loadedCert) *certSet {
	s := &certSet{exact: map[string]*loadedCert{}, wild: map[string]*loadedCert{}}
	sorted := slices.Clone(certs)
	slices.SortFunc(sorted, func(a, b *loadedCert) int { return strings.Compare(a.name, b.name) })
	for _, c := range sorted {
		for _, n := range c.names {
			m := s.exact
			if strings.HasPrefix(n, "*.") {
				m, n = s.wild, n[2:]
			}
			if _, taken := m[n]; !taken {
				m[n] = c
			}
		}
		if s.def == nil || (c.isDef && !s.def.isDef) {
			s.def = c
		}
	}
	return s
}

func (s *certSet) pick(serverName string) *loadedCert {
	if s == nil {
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(serverName, "."))
	if c := s.exact[name]; c != nil {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if c := s.wild[name[i+1:]]; c != nil {
			return c
		}
	}
	return s.def
}

var errNoCertificate = errors.New("no certificate configured")

// tlsCertificate is tls.Config.GetCertificate over the current set.
func (p *Proxy) tlsCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := p.current().tlsCerts.pick(hello.ServerName)
	if c == nil {
		return nil, fmt.Errorf("tls for %q: %w", hello.ServerName, errNoCertificate)
	}
	return c.tls, nil
}

// tlcpCertificate is tlcp.Config.GetCertificate over the current set.
func (p *Proxy) tlcpCertificate(hello *tlcp.ClientHelloInfo) (*tlcp.Certificate, error) {
	c := p.current().tlcpCerts.pick(hello.ServerName)
	if c == nil {
		return nil, fmt.Errorf("tlcp for %q: %w", hello.ServerName, errNoCertificate)
	}
	return c.tlcp, nil
}
