package tlcp

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

func TestHandshakeAllSuites(t *testing.T) {
	for _, s := range cipherSuites {
		t.Run(s.name, func(t *testing.T) {
			ccfg, scfg := clientConfig(t), serverConfig(t)
			ccfg.CipherSuites = []uint16{s.id}
			cc, sc, cerr, serr := handshakePair(t, ccfg, scfg)
			if cerr != nil || serr != nil {
				t.Fatalf("handshake: client %v, server %v", cerr, serr)
			}
			exchange(t, cc, sc, 40000)
			st := cc.ConnectionState()
			if st.CipherSuite != s.id || st.Version != VersionTLCP || !st.HandshakeComplete {
				t.Fatalf("state %+v", st)
			}
			if len(st.PeerCertificates) < 2 || st.PeerCertificates[0].Subject.CommonName != "tlcp.test" {
				t.Fatalf("peer certificates %v", st.PeerCertificates)
			}
			if s.ecdhe && len(sc.ConnectionState().PeerCertificates) < 2 {
				t.Fatalf("ECDHE server saw no client certificate pair")
			}
			cc.Close()
			sc.Close()
		})
	}
}

func TestSessionResumption(t *testing.T) {
	for _, id := range []uint16{ECC_SM4_GCM_SM3, ECDHE_SM4_CBC_SM3} {
		t.Run(CipherSuiteName(id), func(t *testing.T) {
			scfg := serverConfig(t)
			scfg.SessionCache = NewSessionCache(2, 0)
			ccfg := clientConfig(t)
			ccfg.CipherSuites = []uint16{id}
			ccfg.SessionCache = NewSessionCache(8, 0)
			l, err := Listen("tcp", "127.0.0.1:0", scfg)
			if err != nil {
				t.Fatalf("listen: %v", err)
			}
			defer l.Close()
			go func() {
				for i := 0; i < 3; i++ {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.SetDeadline(time.Now().Add(testTimeout))
					go func() {
						defer c.Close()
						io.Copy(c, c)
					}()
				}
			}()
			var resumed []bool
			for i := 0; i < 3; i++ {
				d := &Dialer{NetDialer: &net.Dialer{Timeout: testTimeout}, Config: ccfg}
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				c, err := d.DialContext(ctx, "tcp", l.Addr().String())
				cancel()
				if err != nil {
					t.Fatalf("dial %d: %v", i, err)
				}
				c.SetDeadline(time.Now().Add(testTimeout))
				exchangeEcho(t, c)
				resumed = append(resumed, c.(*Conn).ConnectionState().DidResume)
				c.Close()
			}
			if resumed[0] || !resumed[1] || !resumed[2] {
				t.Fatalf("resumed = %v, want [false true true]", resumed)
			}
			if n := scfg.SessionCache.Len(); n != 1 {
				t.Fatalf("server cache holds %d sessions, want 1", n)
			}
		})
	}
}

func TestSessionCacheBounded(t *testing.T) {
	c := NewSessionCache(3, time.Minute)
	now := time.Now()
	for i := 0; i < 10; i++ {
		c.put(string(rune('a'+i)), &sessionState{created: now})
	}
	if c.Len() != 3 {
		t.Fatalf("len %d, want 3", c.Len())
	}
	if c.get("a", now) != nil || c.get("j", now) == nil {
		t.Fatalf("eviction is not least recently used")
	}
	if c.get("j", now.Add(2*time.Minute)) != nil {
		t.Fatalf("expired session returned")
	}
}

// exchangeEcho writes to an echo server and checks the echo.
func exchangeEcho(t *testing.T, c net.Conn) {
	t.Helper()
	msg := []byte("hello over tlcp")
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
		t.Fatalf("echo %q: %v", got, err)
	}
}

func TestALPN(t *testing.T) {
	ccfg, scfg := clientConfig(t), serverConfig(t)
	ccfg.NextProtos = []string{"h2", "http/1.1"}
	scfg.NextProtos = []string{"http/1.1", "h2"}
	cc, sc, cerr, serr := handshakePair(t, ccfg, scfg)
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	if p := cc.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("client protocol %q", p)
	}
	if p := sc.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("server protocol %q", p)
	}

	ccfg.NextProtos = []string{"spdy/1"}
	_, _, cerr, serr = handshakePair(t, ccfg, scfg)
	wantAlert(t, serr, alertNoApplicationProtocol)
	wantAlert(t, cerr, alertNoApplicationProtocol)
}

func TestClientAuth(t *testing.T) {
	for _, tc := range []struct {
		name     string
		auth     ClientAuthType
		sendCert bool
		wantOK   bool
		wantPeer bool
	}{
		{"none", NoClientCert, true, true, false},
		{"request-without", RequestClientCert, false, true, false},
		{"request-with", RequestClientCert, true, true, true},
		{"verify-if-given-without", VerifyClientCertIfGiven, false, true, false},
		{"verify-if-given-with", VerifyClientCertIfGiven, true, true, true},
		{"require-without", RequireAndVerifyClientCert, false, false, false},
		{"require-with", RequireAndVerifyClientCert, true, true, true},
		{"require-any-without", RequireAnyClientCert, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ccfg, scfg := clientConfig(t), serverConfig(t)
			ccfg.CipherSuites = []uint16{ECC_SM4_GCM_SM3}
			scfg.ClientAuth = tc.auth
			if !tc.sendCert {
				ccfg.Certificates = nil
			}
			_, sc, cerr, serr := handshakePair(t, ccfg, scfg)
			if !tc.wantOK {
				wantAlert(t, serr, alertHandshakeFailure)
				wantAlert(t, cerr, alertHandshakeFailure)
				return
			}
			if cerr != nil || serr != nil {
				t.Fatalf("handshake: client %v, server %v", cerr, serr)
			}
			st := sc.ConnectionState()
			if got := len(st.PeerCertificates) > 0; got != tc.wantPeer {
				t.Fatalf("server saw client certificate: %v, want %v", got, tc.wantPeer)
			}
			if tc.wantPeer && st.PeerCertificates[0].Subject.CommonName != "client.test" {
				t.Fatalf("client certificate %q", st.PeerCertificates[0].Subject.CommonName)
			}
		})
	}
}

func TestClientAuthUnknownCA(t *testing.T) {
	ccfg, scfg := clientConfig(t), serverConfig(t)
	scfg.ClientAuth = RequireAndVerifyClientCert
	scfg.ClientCAs = otherPKI.CertPool()
	_, _, cerr, serr := handshakePair(t, ccfg, scfg)
	wantAlert(t, serr, alertUnknownCA)
	wantAlert(t, cerr, alertUnknownCA)
}

func TestECDHERequiresClientCertificate(t *testing.T) {
	ccfg, scfg := clientConfig(t), serverConfig(t)
	ccfg.CipherSuites = []uint16{ECDHE_SM4_GCM_SM3}
	ccfg.Certificates = nil
	_, _, cerr, serr := handshakePair(t, ccfg, scfg)
	wantAlert(t, cerr, alertHandshakeFailure)
	if serr == nil {
		t.Fatalf("server accepted ECDHE without a client certificate")
	}
}

func TestSNIGetCertificate(t *testing.T) {
	ccfg, scfg := clientConfig(t), serverConfig(t)
	var seen string
	scfg.Certificates = nil
	scfg.GetCertificate = func(hi *ClientHelloInfo) (*CertificatePair, error) {
		seen = hi.ServerName
		return &serverCert, nil
	}
	_, _, cerr, serr := handshakePair(t, ccfg, scfg)
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	if seen != "tlcp.test" {
		t.Fatalf("GetCertificate saw SNI %q", seen)
	}
}
