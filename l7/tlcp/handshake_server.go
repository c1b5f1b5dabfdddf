package tlcp

import (
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
)

// serverHandshake runs the server side of a full or resumed handshake.
// The caller holds handshakeMu and inMu.
func (c *Conn) serverHandshake() error {
	cfg := c.config
	t := newTranscript()
	msg, _, err := c.readHandshake(t)
	if err != nil {
		return err
	}
	hello, ok := msg.(*clientHelloMsg)
	if !ok {
		return c.unexpected(msg, "ClientHello")
	}
	if hello.vers < VersionTLCP {
		return c.abort(alertProtocolVersion, fmt.Errorf("tlcp: client offered version %#04x", hello.vers))
	}
	if !slices.Contains(hello.compressionMethods, 0) {
		return c.abort(alertIllegalParameter, errors.New("tlcp: client does not offer null compression"))
	}
	c.serverName = hello.serverName

	var suite *cipherSuite
	for _, id := range cfg.cipherSuites() {
		if s := suiteByID(id); s != nil && slices.Contains(hello.cipherSuites, id) {
			suite = s
			break
		}
	}
	if suite == nil {
		return c.abort(alertHandshakeFailure, errors.New("tlcp: no cipher suite in common"))
	}
	if len(hello.alpnProtocols) > 0 && len(cfg.NextProtos) > 0 {
		for _, p := range cfg.NextProtos {
			if slices.Contains(hello.alpnProtocols, p) {
				c.alpn = p
				break
			}
		}
		if c.alpn == "" {
			return c.abort(alertNoApplicationProtocol, errors.New("tlcp: no application protocol in common"))
		}
	}

	sh := &serverHelloMsg{vers: VersionTLCP, random: make([]byte, 32), alpnProtocol: c.alpn}
	if _, err := io.ReadFull(cfg.rand(), sh.random); err != nil {
		return c.abort(alertInternalError, fmt.Errorf("tlcp: read server random: %w", err))
	}

	if s := c.resumableSession(hello); s != nil {
		return c.serverResume(t, hello, sh, s)
	}

	cert, err := c.serverCertificate(hello)
	if err != nil {
		return c.abort(alertHandshakeFailure, err)
	}
	c.suite = suite
	sh.cipherSuite = suite.id
	if cfg.SessionCache != nil {
		sh.sessionID = make([]byte, sessionIDLen)
		if _, err := io.ReadFull(cfg.rand(), sh.sessionID); err != nil {
			return c.abort(alertInternalError, fmt.Errorf("tlcp: read session id: %w", err))
		}
	}
	if err := c.sendMsg(t, sh); err != nil {
		return err
	}
	certs := [][]byte{cert.Sign.Chain[0], cert.Enc.Chain[0]}
	certs = append(certs, cert.Sign.Chain[1:]...)
	if err := c.sendMsg(t, &certificateMsg{certificates: certs}); err != nil {
		return err
	}

	var ecdhe ecdheServer
	var skx []byte
	if suite.ecdhe {
		skx, err = ecdhe.serverKeyExchange(cfg.rand(), cert.Sign.PrivateKey, cert.Enc.PrivateKey, hello.random, sh.random)
	} else {
		skx, err = eccServerKeyExchange(cfg.rand(), cert.Sign.PrivateKey, hello.random, sh.random, cert.Enc.Chain[0])
	}
	if err != nil {
		return c.abort(alertInternalError, err)
	}
	if err := c.sendMsg(t, &serverKeyExchangeMsg{key: skx}); err != nil {
		return err
	}

	// ECDHE needs the client's encryption key, so it always asks.
	askCert := cfg.ClientAuth >= RequestClientCert || suite.ecdhe
	if askCert {
		req := &certificateRequestMsg{certificateTypes: []byte{certTypeRSASign, certTypeECDSASign}}
		if cfg.ClientCAs != nil {
			req.certificateAuthorities = cfg.ClientCAs.Subjects()
		}
		if err := c.sendMsg(t, req); err != nil {
			return err
		}
	}
	if err := c.sendMsg(t, &serverHelloDoneMsg{}); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}

	if askCert {
		msg, _, err := c.readHandshake(t)
		if err != nil {
			return err
		}
		cm, ok := msg.(*certificateMsg)
		if !ok {
			return c.unexpected(msg, "Certificate")
		}
		required := cfg.ClientAuth == RequireAnyClientCert || cfg.ClientAuth == RequireAndVerifyClientCert || suite.ecdhe
		if len(cm.certificates) == 0 {
			if required {
				return c.abort(alertHandshakeFailure, errors.New("tlcp: client did not provide a certificate"))
			}
		} else {
			verify := cfg.ClientAuth == VerifyClientCertIfGiven || cfg.ClientAuth == RequireAndVerifyClientCert
			peer, chains, err := checkPeerCertificates(cm.certificates, suite.ecdhe, verify, cfg.ClientCAs, "", x509.ExtKeyUsageClientAuth, cfg)
			if err != nil {
				return c.abortCert(err)
			}
			c.peerCerts, c.verifiedChains = peer, chains
		}
	}

	msg, _, err = c.readHandshake(t)
	if err != nil {
		return err
	}
	ckx, ok := msg.(*clientKeyExchangeMsg)
	if !ok {
		return c.unexpected(msg, "ClientKeyExchange")
	}
	var preMaster []byte
	if suite.ecdhe {
		pub, _ := sm2PublicKey(c.peerCerts[1])
		preMaster, err = ecdhe.processClientKeyExchange(ckx.body, pub)
	} else {
		preMaster, err = eccProcessClientKeyExchange(cfg.rand(), cert.Enc.PrivateKey, ckx.body)
	}
	if errors.Is(err, errDecode) {
		return c.abort(alertDecodeError, err)
	}
	if err != nil {
		return c.abort(alertDecryptError, err)
	}

	if len(c.peerCerts) > 0 {
		digest := t.sum()
		msg, _, err := c.readHandshake(t)
		if err != nil {
			return err
		}
		cv, ok := msg.(*certificateVerifyMsg)
		if !ok {
			return c.unexpected(msg, "CertificateVerify")
		}
		pub, _ := sm2PublicKey(c.peerCerts[0])
		if err := verifySM2(pub, digest, cv.signature); err != nil {
			return c.abort(alertDecryptError, fmt.Errorf("tlcp: client CertificateVerify: %w", err))
		}
	}

	master := masterFromPreMaster(preMaster, hello.random, sh.random)
	if err := c.setKeys(master, hello.random, sh.random); err != nil {
		return c.abort(alertInternalError, err)
	}
	if err := c.readFinished(t, t.clientFinished(master)); err != nil {
		return err
	}
	if err := c.writeCCS(); err != nil {
		return err
	}
	if err := c.sendMsg(t, &finishedMsg{verifyData: t.serverFinished(master)}); err != nil {
		return err
	}
	if cfg.SessionCache != nil {
		cfg.SessionCache.put(string(sh.sessionID), &sessionState{
			id: sh.sessionID, suite: suite.id, masterSecret: master,
			peerCerts: c.peerCerts, verifiedChains: c.verifiedChains, created: cfg.now(),
		})
	}
	return nil
}

// resumableSession returns the cached session the client asks for, if it
// may be resumed with this ClientHello and the current policy.
func (c *Conn) resumableSession(hello *clientHelloMsg) *sessionState {
	cfg := c.config
	if cfg.SessionCache == nil || len(hello.sessionID) == 0 {
		return nil
	}
	s := cfg.SessionCache.get(string(hello.sessionID), cfg.now())
	if s == nil || !slices.Contains(hello.cipherSuites, s.suite) || !slices.Contains(cfg.cipherSuites(), s.suite) {
		return nil
	}
	needCert := cfg.ClientAuth == RequireAnyClientCert || cfg.ClientAuth == RequireAndVerifyClientCert
	if needCert && len(s.peerCerts) == 0 {
		return nil
	}
	return s
}

// serverResume runs the abbreviated handshake.
func (c *Conn) serverResume(t *transcript, hello *clientHelloMsg, sh *serverHelloMsg, s *sessionState) error {
	c.suite = suiteByID(s.suite)
	c.didResume = true
	c.peerCerts, c.verifiedChains = s.peerCerts, s.verifiedChains
	sh.sessionID = hello.sessionID
	sh.cipherSuite = s.suite
	if err := c.sendMsg(t, sh); err != nil {
		return err
	}
	if err := c.setKeys(s.masterSecret, hello.random, sh.random); err != nil {
		return c.abort(alertInternalError, err)
	}
	if err := c.writeCCS(); err != nil {
		return err
	}
	if err := c.sendMsg(t, &finishedMsg{verifyData: t.serverFinished(s.masterSecret)}); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	return c.readFinished(t, t.clientFinished(s.masterSecret))
}

// serverCertificate picks the credential for a ClientHello: GetCertificate
// first, then the entry of Certificates whose signing certificate matches
// the SNI name, then the first entry.
func (c *Conn) serverCertificate(hello *clientHelloMsg) (*Certificate, error) {
	cfg := c.config
	if cfg.GetCertificate != nil {
		cert, err := cfg.GetCertificate(&ClientHelloInfo{
			ServerName: hello.serverName, CipherSuites: hello.cipherSuites,
			SupportedProtos: hello.alpnProtocols, Conn: c.conn,
		})
		if err != nil {
			return nil, fmt.Errorf("tlcp: get certificate: %w", err)
		}
		if cert != nil {
			return validPair(cert)
		}
	}
	if len(cfg.Certificates) == 0 {
		return nil, errors.New("tlcp: no server certificate configured")
	}
	if hello.serverName != "" {
		for i := range cfg.Certificates {
			if l, err := cfg.Certificates[i].Sign.leaf(); err == nil && l.VerifyHostname(hello.serverName) == nil {
				return validPair(&cfg.Certificates[i])
			}
		}
	}
	return validPair(&cfg.Certificates[0])
}

func validPair(c *Certificate) (*Certificate, error) {
	if len(c.Sign.Chain) == 0 || len(c.Enc.Chain) == 0 || c.Sign.PrivateKey == nil || c.Enc.PrivateKey == nil {
		return nil, errors.New("tlcp: server certificate needs a signing and an encryption certificate with keys")
	}
	return c, nil
}

// sendMsg marshals a handshake message, adds it to the transcript and
// queues it.
func (c *Conn) sendMsg(t *transcript, m handshakeMessage) error {
	b, err := m.marshal()
	if err != nil {
		return c.abort(alertInternalError, err)
	}
	t.write(b)
	return c.writeHandshake(b)
}

// setKeys derives the key block and prepares both directions for their
// ChangeCipherSpec.
func (c *Conn) setKeys(master, clientRandom, serverRandom []byte) error {
	s := c.suite
	kb := keysFromMaster(master, clientRandom, serverRandom, s.macLen, s.keyLen, s.ivLen)
	client, err := newProtector(s, kb.clientMAC, kb.clientKey, kb.clientIV)
	if err != nil {
		return err
	}
	server, err := newProtector(s, kb.serverMAC, kb.serverKey, kb.serverIV)
	if err != nil {
		return err
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.isClient {
		c.in.next, c.out.next = server, client
	} else {
		c.in.next, c.out.next = client, server
	}
	return nil
}

// readFinished reads ChangeCipherSpec and Finished and checks the verify
// data against want.
func (c *Conn) readFinished(t *transcript, want []byte) error {
	if err := c.readCCS(); err != nil {
		return err
	}
	msg, _, err := c.readHandshake(t)
	if err != nil {
		return err
	}
	fin, ok := msg.(*finishedMsg)
	if !ok {
		return c.unexpected(msg, "Finished")
	}
	if subtle.ConstantTimeCompare(fin.verifyData, want) != 1 {
		return c.abort(alertDecryptError, errors.New("tlcp: peer's Finished is incorrect"))
	}
	return nil
}

// abortCert aborts with the alert a certificate check chose.
func (c *Conn) abortCert(err error) error {
	var ce *certError
	if errors.As(err, &ce) {
		return c.abort(ce.alert, err)
	}
	return c.abort(alertBadCertificate, err)
}
