package tlcp

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

func TestIsTLCPRecord(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want bool
	}{
		{[]byte{22, 1, 1}, true},
		{[]byte{22, 1, 1, 0, 5}, true},
		{[]byte{22, 3, 1}, false},
		{[]byte{22, 3, 3}, false},
		{[]byte{23, 1, 1}, false},
		{[]byte{22, 1}, false},
		{nil, false},
	} {
		if got := IsTLCPRecord(tc.in); got != tc.want {
			t.Errorf("IsTLCPRecord(%v) = %v", tc.in, got)
		}
	}
}

func TestMuxListenerServesTLSAndTLCP(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsClient, tlsServer := tls13Configs(t)
	ml := &MuxListener{Listener: inner, TLS: tlsServer, TLCP: serverConfig(t), PeekTimeout: 300 * time.Millisecond}
	defer ml.Close()
	kinds := make(chan string, 4)
	go func() {
		for i := 0; i < 3; i++ {
			c, err := ml.Accept()
			if err != nil {
				return
			}
			switch c.(type) {
			case *tls.Conn:
				kinds <- "tls"
			case *Conn:
				kinds <- "tlcp"
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(testTimeout))
				io.Copy(c, c)
			}()
		}
	}()

	// A silent client is dropped after PeekTimeout and does not stop the
	// listener.
	silent, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	d := &net.Dialer{Timeout: testTimeout}
	tc, err := tls.DialWithDialer(d, "tcp", inner.Addr().String(), tlsClient)
	if err != nil {
		t.Fatalf("tls dial: %v", err)
	}
	tc.SetDeadline(time.Now().Add(testTimeout))
	exchangeEcho(t, tc)
	tc.Close()

	gc, err := (&Dialer{NetDialer: d, Config: clientConfig(t)}).Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatalf("tlcp dial: %v", err)
	}
	gc.SetDeadline(time.Now().Add(testTimeout))
	exchangeEcho(t, gc)
	gc.Close()

	got := []string{<-kinds, <-kinds}
	if got[0] != "tls" || got[1] != "tlcp" {
		t.Fatalf("accepted %v, want [tls tlcp]", got)
	}
}
