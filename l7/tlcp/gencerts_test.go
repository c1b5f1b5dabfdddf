package tlcp

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestGenerateTestPKIFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := GenerateTestPKI(dir, "127.0.0.1"); err != nil {
		t.Fatalf("GenerateTestPKI: %v", err)
	}
	for _, f := range []string{"ca.crt", "ca.key", "127.0.0.1-sign.crt", "127.0.0.1-sign.key", "127.0.0.1-enc.crt", "127.0.0.1-enc.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("missing %s: %v", f, err)
		}
	}
	if st, _ := os.Stat(filepath.Join(dir, "ca.key")); st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode %v", st.Mode().Perm())
	}
	cert, err := LoadX509KeyPair(filepath.Join(dir, "127.0.0.1-sign.crt"), filepath.Join(dir, "127.0.0.1-sign.key"),
		filepath.Join(dir, "127.0.0.1-enc.crt"), filepath.Join(dir, "127.0.0.1-enc.key"))
	if err != nil {
		t.Fatalf("LoadX509KeyPair: %v", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := newPoolFromPEM(t, caPEM)

	l, err := Listen("tcp", "127.0.0.1:0", &Config{Certificates: []Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(testTimeout))
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		c.Write(buf[:n])
	}()
	// Dialer fills ServerName from the address, here an IP SAN.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := (&Dialer{Config: &Config{RootCAs: pool}}).DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	exchangeEcho(t, c)
}

func TestX509KeyPairMismatch(t *testing.T) {
	fixtures(t)
	if _, err := X509KeyPair(serverPKI.SignCertPEM, serverPKI.EncKeyPEM, serverPKI.EncCertPEM, serverPKI.EncKeyPEM); err == nil {
		t.Fatalf("mismatched key accepted")
	}
	if _, err := X509KeyPair(serverPKI.SignKeyPEM, serverPKI.SignKeyPEM, serverPKI.EncCertPEM, serverPKI.EncKeyPEM); err == nil {
		t.Fatalf("key as certificate accepted")
	}
}
