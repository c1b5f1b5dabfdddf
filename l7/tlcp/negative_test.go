package tlcp

import (
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestEncryptionCertAsSigningCertRejected(t *testing.T) {
	ccfg, scfg := clientConfig(t), serverConfig(t)
	wrong := serverCert
	wrong.Sign = serverCert.Enc // keyEncipherment only, no digitalSignature
	scfg.Certificates = []Certificate{wrong}
	_, _, cerr, serr := handshakePair(t, ccfg, scfg)
	wantAlert(t, cerr, alertBadCertificate)
	wantAlert(t, serr, alertBadCertificate)
}

func TestSigningCertAsEncryptionCertRejected(t *testing.T) {
	ccfg, scfg := clientConfig(t), serverConfig(t)
	wrong := serverCert
	wrong.Enc = serverCert.Sign
	scfg.Certificates = []Certificate{wrong}
	_, _, cerr, serr := handshakePair(t, ccfg, scfg)
	wantAlert(t, cerr, alertBadCertificate)
	wantAlert(t, serr, alertBadCertificate)
}

func TestExpiredCertificateRejected(t *testing.T) {
	fixtures(t)
	now := time.Now()
	signPEM, signKey, err := serverPKI.issue("tlcp.test", now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0), x509.KeyUsageDigitalSignature)
	if err != nil {
		t.Fatal(err)
	}
	sign, err := parseCertKey(signPEM, signKey)
	if err != nil {
		t.Fatal(err)
	}
	ccfg, scfg := clientConfig(t), serverConfig(t)
	scfg.Certificates = []Certificate{{Sign: sign, Enc: serverCert.Enc}}
	_, _, cerr, serr := handshakePair(t, ccfg, scfg)
	wantAlert(t, cerr, alertCertificateExpired)
	wantAlert(t, serr, alertCertificateExpired)

	// The same through the clock: a valid pair seen from two years on.
	ccfg, scfg = clientConfig(t), serverConfig(t)
	ccfg.Time = func() time.Time { return now.AddDate(2, 0, 0) }
	_, _, cerr, _ = handshakePair(t, ccfg, scfg)
	wantAlert(t, cerr, alertCertificateExpired)
}

func TestUnknownCARejected(t *testing.T) {
	ccfg, scfg := clientConfig(t), serverConfig(t)
	ccfg.RootCAs = otherPKI.CertPool()
	cc, _, cerr, serr := handshakePair(t, ccfg, scfg)
	wantAlert(t, cerr, alertUnknownCA)
	wantAlert(t, serr, alertUnknownCA)
	if _, err := cc.Write([]byte("x")); err == nil {
		t.Fatalf("write after failed handshake succeeded")
	}
}

func TestWrongServerNameRejected(t *testing.T) {
	ccfg, scfg := clientConfig(t), serverConfig(t)
	ccfg.ServerName = "other.test"
	_, _, cerr, _ := handshakePair(t, ccfg, scfg)
	wantAlert(t, cerr, alertBadCertificate)
}

// mitm relays between a client and a server and lets tamper change the
// records (as whole records) flowing from the client.
func mitm(t *testing.T, tamper func(i int, rec []byte)) (clientSide, serverSide net.Conn) {
	t.Helper()
	c1, p1 := tcpPair(t) // client <-> proxy
	p2, s2 := tcpPair(t) // proxy <-> server
	// Client to server, record by record.
	go func() {
		defer p2.Close()
		for i := 0; i < 64; i++ {
			hdr := make([]byte, 5)
			if _, err := io.ReadFull(p1, hdr); err != nil {
				return
			}
			body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
			if _, err := io.ReadFull(p1, body); err != nil {
				return
			}
			rec := append(hdr, body...)
			tamper(i, rec)
			if _, err := p2.Write(rec); err != nil {
				return
			}
		}
	}()
	go func() {
		defer p1.Close()
		io.Copy(p1, p2)
	}()
	return c1, s2
}

func TestTamperedFinishedRejected(t *testing.T) {
	for _, id := range []uint16{ECC_SM4_GCM_SM3, ECC_SM4_CBC_SM3} {
		t.Run(CipherSuiteName(id), func(t *testing.T) {
			// Client flight: ClientHello, then one record per message:
			// ClientKeyExchange, ChangeCipherSpec, Finished (records 1-3
			// without client auth). Flip a bit in the encrypted Finished.
			cside, sside := mitm(t, func(i int, rec []byte) {
				if rec[0] == byte(recordTypeHandshake) && i == 3 {
					rec[len(rec)-1] ^= 0x40
				}
			})
			ccfg, scfg := clientConfig(t), serverConfig(t)
			ccfg.CipherSuites = []uint16{id}
			cc, sc := Client(cside, ccfg), Server(sside, scfg)
			errc := make(chan error, 1)
			go func() { errc <- sc.Handshake() }()
			cerr := cc.Handshake()
			serr := <-errc
			wantAlert(t, serr, alertBadRecordMAC)
			wantAlert(t, cerr, alertBadRecordMAC)
		})
	}
}

func TestBadRecordMACClosesConnection(t *testing.T) {
	for _, id := range []uint16{ECDHE_SM4_GCM_SM3, ECDHE_SM4_CBC_SM3} {
		t.Run(CipherSuiteName(id), func(t *testing.T) {
			var tampered bool
			cside, sside := mitm(t, func(i int, rec []byte) {
				if rec[0] == byte(recordTypeApplicationData) && !tampered {
					tampered = true
					rec[len(rec)/2] ^= 1
				}
			})
			ccfg, scfg := clientConfig(t), serverConfig(t)
			ccfg.CipherSuites = []uint16{id}
			cc, sc := Client(cside, ccfg), Server(sside, scfg)
			errc := make(chan error, 1)
			go func() { errc <- sc.Handshake() }()
			if err := cc.Handshake(); err != nil {
				t.Fatalf("client handshake: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("server handshake: %v", err)
			}
			if _, err := cc.Write([]byte("this record will be corrupted")); err != nil {
				t.Fatalf("write: %v", err)
			}
			_, err := sc.Read(make([]byte, 64))
			wantAlert(t, err, alertBadRecordMAC)
			_, err = cc.Read(make([]byte, 64))
			wantAlert(t, err, alertBadRecordMAC)
			if _, err := sc.Read(make([]byte, 1)); err == nil {
				t.Fatalf("read after fatal error succeeded")
			}
		})
	}
}

// rawToServer sends raw bytes to a fresh server, half-closes, and returns
// the server's handshake error and everything it sent back.
func rawToServer(t *testing.T, payload []byte) (error, []byte) {
	t.Helper()
	cr, sr := tcpPair(t)
	sc := Server(sr, serverConfig(t))
	errc := make(chan error, 1)
	go func() { errc <- sc.Handshake() }()
	if _, err := cr.Write(payload); err != nil {
		t.Fatalf("write: %v", err)
	}
	cr.(*net.TCPConn).CloseWrite()
	back, err := io.ReadAll(cr)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	return <-errc, back
}

// wantAlertRecord checks that back ends with a plaintext fatal alert a.
func wantAlertRecord(t *testing.T, back []byte, a alert) {
	t.Helper()
	want := []byte{21, 1, 1, 0, 2, alertLevelError, byte(a)}
	if len(back) < len(want) || string(back[len(back)-len(want):]) != string(want) {
		t.Fatalf("peer got %x, want alert record %x", back, want)
	}
}

func TestTruncatedRecord(t *testing.T) {
	for name, payload := range map[string][]byte{
		"header": {22, 1, 1},
		"body":   {22, 1, 1, 0, 50, 1, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			err, back := rawToServer(t, payload)
			wantAlert(t, err, alertDecodeError)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error %v does not wrap io.ErrUnexpectedEOF", err)
			}
			wantAlertRecord(t, back, alertDecodeError)
		})
	}
}

func TestOversizedRecord(t *testing.T) {
	n := maxPlaintext + 1
	err, back := rawToServer(t, []byte{22, 1, 1, byte(n >> 8), byte(n)})
	wantAlert(t, err, alertRecordOverflow)
	wantAlertRecord(t, back, alertRecordOverflow)
}

func TestWrongRecordVersion(t *testing.T) {
	err, back := rawToServer(t, []byte{22, 3, 3, 0, 1, 0})
	wantAlert(t, err, alertProtocolVersion)
	wantAlertRecord(t, back, alertProtocolVersion)
}

func TestGarbageHandshakeMessage(t *testing.T) {
	err, back := rawToServer(t, []byte{22, 1, 1, 0, 6, typeClientHello, 0, 0, 2, 1, 1})
	wantAlert(t, err, alertDecodeError)
	wantAlertRecord(t, back, alertDecodeError)
}

func TestNoCommonSuite(t *testing.T) {
	ccfg, scfg := clientConfig(t), serverConfig(t)
	ccfg.CipherSuites = []uint16{ECC_SM4_CBC_SM3}
	scfg.CipherSuites = []uint16{ECC_SM4_GCM_SM3}
	_, _, cerr, serr := handshakePair(t, ccfg, scfg)
	wantAlert(t, serr, alertHandshakeFailure)
	wantAlert(t, cerr, alertHandshakeFailure)
}

func TestHandshakeContextCanceled(t *testing.T) {
	cr, _ := tcpPair(t) // nobody answers
	cc := Client(cr, clientConfig(t))
	ctx, cancel := contextWithTimeout(100 * time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := cc.HandshakeContext(ctx); err == nil {
		t.Fatalf("handshake against a silent peer succeeded")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("handshake did not honour the context")
	}
}

// TestTamperedHandshakeFailsFinished changes an unauthenticated byte of
// the ClientHello in flight (an unselected cipher suite): the keys still
// agree, but the transcripts differ, so the server's check of the
// client's Finished must fail with decrypt_error.
func TestTamperedHandshakeFailsFinished(t *testing.T) {
	const secondSuite = recordHeaderLen + 4 + 2 + 32 + 1 + 2 + 2
	cside, sside := mitm(t, func(i int, rec []byte) {
		if i == 0 {
			rec[secondSuite+1] = byte(ECDHE_SM4_CBC_SM3 & 0xff)
		}
	})
	ccfg, scfg := clientConfig(t), serverConfig(t)
	ccfg.CipherSuites = []uint16{ECC_SM4_GCM_SM3, ECC_SM4_CBC_SM3}
	cc, sc := Client(cside, ccfg), Server(sside, scfg)
	errc := make(chan error, 1)
	go func() { errc <- sc.Handshake() }()
	cerr := cc.Handshake()
	serr := <-errc
	wantAlert(t, serr, alertDecryptError)
	wantAlert(t, cerr, alertDecryptError)
}
