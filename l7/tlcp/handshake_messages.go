package tlcp

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// handshakeMessage is one TLCP handshake message. marshal returns the
// message with its 4-byte header; unmarshal takes the same and reports
// whether it was well formed.
type handshakeMessage interface {
	marshal() ([]byte, error)
	unmarshal(data []byte) bool
}

// marshalMsg frames a body built by f as a handshake message of type typ.
func marshalMsg(typ uint8, f func(b *cryptobyte.Builder)) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8(typ)
	b.AddUint24LengthPrefixed(f)
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("tlcp: marshal handshake message %d: %w", typ, err)
	}
	return out, nil
}

// readBody checks the header of a handshake message of type typ and
// returns its body.
func readBody(data []byte, typ uint8) (cryptobyte.String, bool) {
	s := cryptobyte.String(data)
	var t uint8
	var body cryptobyte.String
	if !s.ReadUint8(&t) || t != typ || !s.ReadUint24LengthPrefixed(&body) || !s.Empty() {
		return nil, false
	}
	return body, true
}

type clientHelloMsg struct {
	vers               uint16
	random             []byte
	sessionID          []byte
	cipherSuites       []uint16
	compressionMethods []uint8
	serverName         string
	alpnProtocols      []string
}

func (m *clientHelloMsg) marshal() ([]byte, error) {
	return marshalMsg(typeClientHello, func(b *cryptobyte.Builder) {
		b.AddUint16(m.vers)
		b.AddBytes(m.random)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.sessionID) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, s := range m.cipherSuites {
				b.AddUint16(s)
			}
		})
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.compressionMethods) })
		if m.serverName == "" && len(m.alpnProtocols) == 0 {
			return
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			if m.serverName != "" {
				b.AddUint16(extensionServerName)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						b.AddUint8(0) // host_name
						b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.serverName)) })
					})
				})
			}
			if len(m.alpnProtocols) > 0 {
				b.AddUint16(extensionALPN)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						for _, p := range m.alpnProtocols {
							b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(p)) })
						}
					})
				})
			}
		})
	})
}

func (m *clientHelloMsg) unmarshal(data []byte) bool {
	*m = clientHelloMsg{}
	s, ok := readBody(data, typeClientHello)
	if !ok {
		return false
	}
	var sid, suites, comp cryptobyte.String
	if !s.ReadUint16(&m.vers) || !s.ReadBytes(&m.random, 32) ||
		!s.ReadUint8LengthPrefixed(&sid) || len(sid) > 32 ||
		!s.ReadUint16LengthPrefixed(&suites) || len(suites)%2 != 0 ||
		!s.ReadUint8LengthPrefixed(&comp) {
		return false
	}
	m.sessionID = append([]byte(nil), sid...)
	for !suites.Empty() {
		var id uint16
		suites.ReadUint16(&id)
		m.cipherSuites = append(m.cipherSuites, id)
	}
	m.compressionMethods = append([]byte(nil), comp...)
	if s.Empty() {
		return true
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}
	seen := map[uint16]bool{}
	for !exts.Empty() {
		var typ uint16
		var ext cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&ext) || seen[typ] {
			return false
		}
		seen[typ] = true
		switch typ {
		case extensionServerName:
			var list cryptobyte.String
			if !ext.ReadUint16LengthPrefixed(&list) || list.Empty() || !ext.Empty() {
				return false
			}
			for !list.Empty() {
				var nameType uint8
				var name cryptobyte.String
				if !list.ReadUint8(&nameType) || !list.ReadUint16LengthPrefixed(&name) || len(name) == 0 {
					return false
				}
				if nameType == 0 && m.serverName == "" {
					m.serverName = string(name)
				}
			}
		case extensionALPN:
			var list cryptobyte.String
			if !ext.ReadUint16LengthPrefixed(&list) || list.Empty() || !ext.Empty() {
				return false
			}
			for !list.Empty() {
				var proto cryptobyte.String
				if !list.ReadUint8LengthPrefixed(&proto) || len(proto) == 0 {
					return false
				}
				m.alpnProtocols = append(m.alpnProtocols, string(proto))
			}
		}
	}
	return true
}

type serverHelloMsg struct {
	vers              uint16
	random            []byte
	sessionID         []byte
	cipherSuite       uint16
	compressionMethod uint8
	alpnProtocol      string
}

func (m *serverHelloMsg) marshal() ([]byte, error) {
	return marshalMsg(typeServerHello, func(b *cryptobyte.Builder) {
		b.AddUint16(m.vers)
		b.AddBytes(m.random)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.sessionID) })
		b.AddUint16(m.cipherSuite)
		b.AddUint8(m.compressionMethod)
		if m.alpnProtocol == "" {
			return
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			b.AddUint16(extensionALPN)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.alpnProtocol)) })
				})
			})
		})
	})
}

func (m *serverHelloMsg) unmarshal(data []byte) bool {
	*m = serverHelloMsg{}
	s, ok := readBody(data, typeServerHello)
	if !ok {
		return false
	}
	var sid cryptobyte.String
	if !s.ReadUint16(&m.vers) || !s.ReadBytes(&m.random, 32) ||
		!s.ReadUint8LengthPrefixed(&sid) || len(sid) > 32 ||
		!s.ReadUint16(&m.cipherSuite) || !s.ReadUint8(&m.compressionMethod) {
		return false
	}
	m.sessionID = append([]byte(nil), sid...)
	if s.Empty() {
		return true
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}
	for !exts.Empty() {
		var typ uint16
		var ext cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&ext) {
			return false
		}
		if typ == extensionALPN {
			var list, proto cryptobyte.String
			if !ext.ReadUint16LengthPrefixed(&list) || !list.ReadUint8LengthPrefixed(&proto) ||
				len(proto) == 0 || !list.Empty() || !ext.Empty() {
				return false
			}
			m.alpnProtocol = string(proto)
		}
	}
	return true
}

type certificateMsg struct {
	certificates [][]byte
}

func (m *certificateMsg) marshal() ([]byte, error) {
	return marshalMsg(typeCertificate, func(b *cryptobyte.Builder) {
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, c := range m.certificates {
				b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c) })
			}
		})
	})
}

func (m *certificateMsg) unmarshal(data []byte) bool {
	*m = certificateMsg{}
	s, ok := readBody(data, typeCertificate)
	if !ok {
		return false
	}
	var list cryptobyte.String
	if !s.ReadUint24LengthPrefixed(&list) || !s.Empty() {
		return false
	}
	for !list.Empty() {
		var c cryptobyte.String
		if !list.ReadUint24LengthPrefixed(&c) || len(c) == 0 {
			return false
		}
		m.certificates = append(m.certificates, append([]byte(nil), c...))
	}
	return true
}

// serverKeyExchangeMsg carries the key agreement specific body, which the
// key agreement parses.
type serverKeyExchangeMsg struct {
	key []byte
}

func (m *serverKeyExchangeMsg) marshal() ([]byte, error) {
	return marshalMsg(typeServerKeyExchange, func(b *cryptobyte.Builder) { b.AddBytes(m.key) })
}

func (m *serverKeyExchangeMsg) unmarshal(data []byte) bool {
	s, ok := readBody(data, typeServerKeyExchange)
	m.key = append([]byte(nil), s...)
	return ok
}

type certificateRequestMsg struct {
	certificateTypes       []byte
	certificateAuthorities [][]byte
}

func (m *certificateRequestMsg) marshal() ([]byte, error) {
	return marshalMsg(typeCertificateRequest, func(b *cryptobyte.Builder) {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.certificateTypes) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, ca := range m.certificateAuthorities {
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(ca) })
			}
		})
	})
}

func (m *certificateRequestMsg) unmarshal(data []byte) bool {
	*m = certificateRequestMsg{}
	s, ok := readBody(data, typeCertificateRequest)
	if !ok {
		return false
	}
	var types, cas cryptobyte.String
	if !s.ReadUint8LengthPrefixed(&types) || types.Empty() ||
		!s.ReadUint16LengthPrefixed(&cas) || !s.Empty() {
		return false
	}
	m.certificateTypes = append([]byte(nil), types...)
	for !cas.Empty() {
		var ca cryptobyte.String
		if !cas.ReadUint16LengthPrefixed(&ca) || len(ca) == 0 {
			return false
		}
		m.certificateAuthorities = append(m.certificateAuthorities, append([]byte(nil), ca...))
	}
	return true
}

type serverHelloDoneMsg struct{}

func (m *serverHelloDoneMsg) marshal() ([]byte, error) {
	return []byte{typeServerHelloDone, 0, 0, 0}, nil
}

func (m *serverHelloDoneMsg) unmarshal(data []byte) bool {
	s, ok := readBody(data, typeServerHelloDone)
	return ok && s.Empty()
}

// clientKeyExchangeMsg carries the key agreement specific body.
type clientKeyExchangeMsg struct {
	body []byte
}

func (m *clientKeyExchangeMsg) marshal() ([]byte, error) {
	return marshalMsg(typeClientKeyExchange, func(b *cryptobyte.Builder) { b.AddBytes(m.body) })
}

func (m *clientKeyExchangeMsg) unmarshal(data []byte) bool {
	s, ok := readBody(data, typeClientKeyExchange)
	m.body = append([]byte(nil), s...)
	return ok && len(s) > 0
}

type certificateVerifyMsg struct {
	signature []byte
}

func (m *certificateVerifyMsg) marshal() ([]byte, error) {
	return marshalMsg(typeCertificateVerify, func(b *cryptobyte.Builder) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.signature) })
	})
}

func (m *certificateVerifyMsg) unmarshal(data []byte) bool {
	*m = certificateVerifyMsg{}
	s, ok := readBody(data, typeCertificateVerify)
	var sig cryptobyte.String
	if !ok || !s.ReadUint16LengthPrefixed(&sig) || len(sig) == 0 || !s.Empty() {
		return false
	}
	m.signature = append([]byte(nil), sig...)
	return true
}

type finishedMsg struct {
	verifyData []byte
}

func (m *finishedMsg) marshal() ([]byte, error) {
	return marshalMsg(typeFinished, func(b *cryptobyte.Builder) { b.AddBytes(m.verifyData) })
}

func (m *finishedMsg) unmarshal(data []byte) bool {
	s, ok := readBody(data, typeFinished)
	if !ok || len(s) != finishedVerifyLen {
		return false
	}
	m.verifyData = append([]byte(nil), s...)
	return true
}

// helloRequestMsg asks for renegotiation, which this package refuses.
type helloRequestMsg struct{}

func (m *helloRequestMsg) marshal() ([]byte, error) { return []byte{typeHelloRequest, 0, 0, 0}, nil }

func (m *helloRequestMsg) unmarshal(data []byte) bool {
	s, ok := readBody(data, typeHelloRequest)
	return ok && s.Empty()
}

var errDecode = errors.New("tlcp: malformed handshake message")

// parseHandshakeMessage decodes one complete handshake message (header
// included). It returns errDecode for malformed or unknown messages.
func parseHandshakeMessage(data []byte) (handshakeMessage, error) {
	if len(data) < 4 {
		return nil, errDecode
	}
	var m handshakeMessage
	switch data[0] {
	case typeHelloRequest:
		m = new(helloRequestMsg)
	case typeClientHello:
		m = new(clientHelloMsg)
	case typeServerHello:
		m = new(serverHelloMsg)
	case typeCertificate:
		m = new(certificateMsg)
	case typeServerKeyExchange:
		m = new(serverKeyExchangeMsg)
	case typeCertificateRequest:
		m = new(certificateRequestMsg)
	case typeServerHelloDone:
		m = new(serverHelloDoneMsg)
	case typeCertificateVerify:
		m = new(certificateVerifyMsg)
	case typeClientKeyExchange:
		m = new(clientKeyExchangeMsg)
	case typeFinished:
		m = new(finishedMsg)
	default:
		return nil, fmt.Errorf("unknown handshake message type %d: %w", data[0], errDecode)
	}
	if !m.unmarshal(data) {
		return nil, fmt.Errorf("handshake message type %d: %w", data[0], errDecode)
	}
	return m, nil
}
