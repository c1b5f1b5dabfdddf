package tlcp

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
)

// clientHandshake runs the client side of a full or resumed handshake.
// The caller holds handshakeMu and inMu.
func (c *Conn) clientHandshake() error {
	cfg := c.config
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		return errors.New("tlcp: either ServerName or InsecureSkipVerify must be set")
	}
	hello := &clientHelloMsg{
		vers:               VersionTLCP,
		random:             make([]byte, 32),
		compressionMethods: []uint8{0},
		alpnProtocols:      cfg.NextProtos,
	}
	if net.ParseIP(cfg.ServerName) == nil {
		hello.serverName = cfg.ServerName
	}
	for _, id := range cfg.cipherSuites() {
		if suiteByID(id) != nil {
			hello.cipherSuites = append(hello.cipherSuites, id)
		}
	}
	if len(hello.cipherSuites) == 0 {
		return errors.New("tlcp: no supported cipher suite configured")
	}
	if _, err := io.ReadFull(cfg.rand(), hello.random); err != nil {
		return fmt.Errorf("tlcp: read client random: %w", err)
	}
	cacheKey := cfg.ServerName + "|" + c.conn.RemoteAddr().String()
	var session *sessionState
	if cfg.SessionCache != nil {
		session = cfg.SessionCache.get(cacheKey, cfg.now())
		if session != nil && slices.Contains(hello.cipherSuites, session.suite) {
			hello.sessionID = session.id
		} else {
			session = nil
		}
	}

	t := newTranscript()
	if err := c.sendMsg(t, hello); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}

	msg, _, err := c.readHandshake(t)
	if err != nil {
		return err
	}
	sh, ok := msg.(*serverHelloMsg)
	if !ok {
		return c.unexpected(msg, "ServerHello")
	}
	if sh.vers != VersionTLCP {
		return c.abort(alertProtocolVersion, fmt.Errorf("tlcp: server chose version %#04x", sh.vers))
	}
	if !slices.Contains(hello.cipherSuites, sh.cipherSuite) {
		return c.abort(alertIllegalParameter, fmt.Errorf("tlcp: server chose unoffered cipher suite %#04x", sh.cipherSuite))
	}
	if sh.compressionMethod != 0 {
		return c.abort(alertIllegalParameter, errors.New("tlcp: server chose compression"))
	}
	if sh.alpnProtocol != "" && !slices.Contains(cfg.NextProtos, sh.alpnProtocol) {
		return c.abort(alertIllegalParameter, fmt.Errorf("tlcp: server chose unoffered protocol %q", sh.alpnProtocol))
	}
	c.suite = suiteByID(sh.cipherSuite)
	c.alpn = sh.alpnProtocol
	c.serverName = cfg.ServerName

	if session != nil && bytes.Equal(sh.sessionID, session.id) {
		return c.clientResume(t, hello, sh, session)
	}
	if session != nil {
		cfg.SessionCache.remove(cacheKey)
	}

	master, err := c.clientFullHandshake(t, hello, sh)
	if err != nil {
		return err
	}
	if cfg.SessionCache != nil && len(sh.sessionID) > 0 {
		cfg.SessionCache.put(cacheKey, &sessionState{
			id: sh.sessionID, suite: c.suite.id, masterSecret: master, alpn: c.alpn,
			peerCerts: c.peerCerts, verifiedChains: c.verifiedChains, created: cfg.now(),
		})
	}
	return nil
}

func (c *Conn) clientResume(t *transcript, hello *clientHelloMsg, sh *serverHelloMsg, s *sessionState) error {
	if sh.cipherSuite != s.suite {
		return c.abort(alertIllegalParameter, errors.New("tlcp: server resumed with another cipher suite"))
	}
	c.didResume = true
	c.peerCerts, c.verifiedChains = s.peerCerts, s.verifiedChains
	if err := c.setKeys(s.masterSecret, hello.random, sh.random); err != nil {
		return c.abort(alertInternalError, err)
	}
	if err := c.readFinished(t, t.serverFinished(s.masterSecret)); err != nil {
		return err
	}
	if err := c.writeCCS(); err != nil {
		return err
	}
	return c.sendMsg(t, &finishedMsg{verifyData: t.clientFinished(s.masterSecret)})
}

// clientFullHandshake runs the rest of a full handshake after ServerHello
// and returns the master secret.
func (c *Conn) clientFullHandshake(t *transcript, hello *clientHelloMsg, sh *serverHelloMsg) ([]byte, error) {
	cfg := c.config
	msg, _, err := c.readHandshake(t)
	if err != nil {
		return nil, err
	}
	cm, ok := msg.(*certificateMsg)
	if !ok {
		return nil, c.unexpected(msg, "Certificate")
	}
	peer, chains, err := checkPeerCertificates(cm.certificates, true, !cfg.InsecureSkipVerify, cfg.RootCAs, cfg.ServerName, x509.ExtKeyUsageServerAuth, cfg)
	if err != nil {
		return nil, c.abortCert(err)
	}
	c.peerCerts, c.verifiedChains = peer, chains
	signPub, _ := sm2PublicKey(peer[0])
	encPub, _ := sm2PublicKey(peer[1])

	msg, _, err = c.readHandshake(t)
	if err != nil {
		return nil, err
	}
	skx, ok := msg.(*serverKeyExchangeMsg)
	if !ok {
		return nil, c.unexpected(msg, "ServerKeyExchange")
	}
	var serverEph = encPub
	if c.suite.ecdhe {
		serverEph, err = ecdheVerifyServerKeyExchange(skx.key, signPub, hello.random, sh.random)
	} else {
		err = eccVerifyServerKeyExchange(skx.key, signPub, hello.random, sh.random, cm.certificates[1])
	}
	if errors.Is(err, errDecode) {
		return nil, c.abort(alertDecodeError, err)
	}
	if err != nil {
		return nil, c.abort(alertDecryptError, fmt.Errorf("tlcp: ServerKeyExchange: %w", err))
	}

	msg, _, err = c.readHandshake(t)
	if err != nil {
		return nil, err
	}
	_, asked := msg.(*certificateRequestMsg)
	if asked {
		if msg, _, err = c.readHandshake(t); err != nil {
			return nil, err
		}
	}
	if _, ok := msg.(*serverHelloDoneMsg); !ok {
		return nil, c.unexpected(msg, "ServerHelloDone")
	}

	var own *Certificate
	if asked {
		if len(cfg.Certificates) > 0 && len(cfg.Certificates[0].Sign.Chain) > 0 {
			own = &cfg.Certificates[0]
		}
		var list [][]byte
		if own != nil {
			list = append(list, own.Sign.Chain[0])
			if len(own.Enc.Chain) > 0 {
				list = append(list, own.Enc.Chain[0])
			}
			list = append(list, own.Sign.Chain[1:]...)
		}
		if err := c.sendMsg(t, &certificateMsg{certificates: list}); err != nil {
			return nil, err
		}
	}

	var preMaster, body []byte
	if c.suite.ecdhe {
		if own == nil || own.Enc.PrivateKey == nil {
			return nil, c.abort(alertHandshakeFailure, errors.New("tlcp: ECDHE needs a client certificate pair"))
		}
		preMaster, body, err = ecdheClientKeyExchange(cfg.rand(), own.Enc.PrivateKey, encPub, serverEph)
	} else {
		preMaster, body, err = eccClientKeyExchange(cfg.rand(), encPub)
	}
	if err != nil {
		return nil, c.abort(alertInternalError, err)
	}
	if err := c.sendMsg(t, &clientKeyExchangeMsg{body: body}); err != nil {
		return nil, err
	}
	if own != nil {
		sig, err := signSM2(cfg.rand(), own.Sign.PrivateKey, t.sum())
		if err != nil {
			return nil, c.abort(alertInternalError, err)
		}
		if err := c.sendMsg(t, &certificateVerifyMsg{signature: sig}); err != nil {
			return nil, err
		}
	}

	master := masterFromPreMaster(preMaster, hello.random, sh.random)
	if err := c.setKeys(master, hello.random, sh.random); err != nil {
		return nil, c.abort(alertInternalError, err)
	}
	if err := c.writeCCS(); err != nil {
		return nil, err
	}
	if err := c.sendMsg(t, &finishedMsg{verifyData: t.clientFinished(master)}); err != nil {
		return nil, err
	}
	if err := c.flush(); err != nil {
		return nil, err
	}
	if err := c.readFinished(t, t.serverFinished(master)); err != nil {
		return nil, err
	}
	return master, nil
}
