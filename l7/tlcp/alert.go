package tlcp

import "strconv"

// alert is a TLCP alert description.
type alert uint8

const (
	alertLevelWarning = 1
	alertLevelError   = 2
)

const (
	alertCloseNotify            alert = 0
	alertUnexpectedMessage      alert = 10
	alertBadRecordMAC           alert = 20
	alertDecryptionFailed       alert = 21
	alertRecordOverflow         alert = 22
	alertDecompressionFailure   alert = 30
	alertHandshakeFailure       alert = 40
	alertBadCertificate         alert = 42
	alertUnsupportedCertificate alert = 43
	alertCertificateRevoked     alert = 44
	alertCertificateExpired     alert = 45
	alertCertificateUnknown     alert = 46
	alertIllegalParameter       alert = 47
	alertUnknownCA              alert = 48
	alertAccessDenied           alert = 49
	alertDecodeError            alert = 50
	alertDecryptError           alert = 51
	alertProtocolVersion        alert = 70
	alertInsufficientSecurity   alert = 71
	alertInternalError          alert = 80
	alertUserCanceled           alert = 90
	alertNoRenegotiation        alert = 100
	alertNoApplicationProtocol  alert = 120
	// The alerts GB/T 38636 adds to TLS.
	alertUnsupportedSite2Site alert = 200
	alertNoArea               alert = 201
	alertUnsupportedAreaType  alert = 202
	alertBadIBCParam          alert = 203
	alertUnsupportedIBCParam  alert = 204
	alertIdentityNeed         alert = 205
)

var alertText = map[alert]string{
	alertCloseNotify:            "close notify",
	alertUnexpectedMessage:      "unexpected message",
	alertBadRecordMAC:           "bad record MAC",
	alertDecryptionFailed:       "decryption failed",
	alertRecordOverflow:         "record overflow",
	alertDecompressionFailure:   "decompression failure",
	alertHandshakeFailure:       "handshake failure",
	alertBadCertificate:         "bad certificate",
	alertUnsupportedCertificate: "unsupported certificate",
	alertCertificateRevoked:     "revoked certificate",
	alertCertificateExpired:     "expired certificate",
	alertCertificateUnknown:     "unknown certificate",
	alertIllegalParameter:       "illegal parameter",
	alertUnknownCA:              "unknown certificate authority",
	alertAccessDenied:           "access denied",
	alertDecodeError:            "error decoding message",
	alertDecryptError:           "error decrypting message",
	alertProtocolVersion:        "protocol version not supported",
	alertInsufficientSecurity:   "insufficient security level",
	alertInternalError:          "internal error",
	alertUserCanceled:           "user canceled",
	alertNoRenegotiation:        "no renegotiation",
	alertNoApplicationProtocol:  "no application protocol",
	alertUnsupportedSite2Site:   "unsupported site2site",
	alertNoArea:                 "no area",
	alertUnsupportedAreaType:    "unsupported area type",
	alertBadIBCParam:            "bad IBC parameter",
	alertUnsupportedIBCParam:    "unsupported IBC parameter",
	alertIdentityNeed:           "identity needed",
}

func (a alert) String() string {
	if s, ok := alertText[a]; ok {
		return "tlcp: " + s
	}
	return "tlcp: alert(" + strconv.Itoa(int(a)) + ")"
}

func (a alert) Error() string { return a.String() }

// AlertError is returned when the peer sent a fatal alert. Description is
// the alert number of GB/T 38636 (the TLS numbers plus 200-205).
type AlertError struct {
	Description uint8
}

// Error says which alert the peer sent.
func (e *AlertError) Error() string {
	return "remote error: " + alert(e.Description).String()
}

// LocalAlertError is returned when this side aborted the connection and
// sent the fatal alert Description to the peer; Err is the cause.
type LocalAlertError struct {
	Description uint8
	Err         error
}

// Error says which alert was sent and why.
func (e *LocalAlertError) Error() string {
	return "sent " + alert(e.Description).String() + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *LocalAlertError) Unwrap() error { return e.Err }
