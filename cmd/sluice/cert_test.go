package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicelb/sluice/mgmt/client"
)

// selfSigned returns a PEM certificate for cn and names, valid until
// notAfter, and its PEM key.
func selfSigned(t *testing.T, cn string, notAfter time.Time, names ...string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: notAfter.Add(-24 * time.Hour), NotAfter: notAfter}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}))
}

func certViewJSON(t *testing.T, v client.CertView) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCertSendsThePEMAndShowsTheCertificate(t *testing.T) {
	crt, key := selfSigned(t, "www", time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC), "www.example.com", "*.example.org", "192.0.2.1")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "site.crt"), crt)
	writeFile(t, filepath.Join(dir, "site.key"), key)
	view := certViewJSON(t, client.CertView{Name: "site", Kind: "tls", Default: true, Cert: crt, Version: 3})
	f := newFakeAPI(t, map[string]canned{"PUT /v1/certs/site": {body: view}, "GET /v1/certs/site": {body: view},
		"GET /v1/certs": {body: `{"certs":[` + view + `]}`}})
	r := f.run("cert", "set", "site", "--cert", filepath.Join(dir, "site.crt"), "--key", filepath.Join(dir, "site.key"), "--default")
	wantStdout(t, r, `name     site
kind     tls
default  yes
version  3

CERTIFICATE  SUBJECT  NAMES                                    NOT AFTER
cert         www      www.example.com,*.example.org,192.0.2.1  2027-03-01
`)
	var sent client.Cert
	if err := json.Unmarshal([]byte(f.last(t).Body), &sent); err != nil {
		t.Fatal(err)
	}
	if sent != (client.Cert{Name: "site", Kind: "tls", Default: true, CertPEM: crt, KeyPEM: key}) {
		t.Errorf("sent %+v", sent)
	}
	wantStdout(t, f.run("cert", "list"), `NAME  KIND  DEFAULT  SUBJECT  NAMES                                    NOT AFTER   VERSION
site  tls   yes      www      www.example.com,*.example.org,192.0.2.1  2027-03-01  3
`)
	r = f.run("cert", "show", "site", "-o", "json")
	wantOK(t, r)
	sameJSON(t, r.stdout, view)
}

func TestCertTLCPSendsBothPairs(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"sign.crt", "sign.key", "enc.crt", "enc.key"} {
		writeFile(t, filepath.Join(dir, n), strings.ToUpper(n)+"\n")
	}
	f := newFakeAPI(t, map[string]canned{"PUT /v1/certs/gm": {body: `{"name":"gm","kind":"tlcp","sign_cert":"x","enc_cert":"y","version":1}`}})
	r := f.run("cert", "set", "gm", "--kind", "tlcp", "--sign-cert", filepath.Join(dir, "sign.crt"), "--sign-key", filepath.Join(dir, "sign.key"),
		"--enc-cert", filepath.Join(dir, "enc.crt"), "--enc-key", filepath.Join(dir, "enc.key"))
	wantStdout(t, r, `name     gm
kind     tlcp
default  no
version  1

CERTIFICATE  SUBJECT   NAMES  NOT AFTER
sign         (no PEM)  -      -
enc          (no PEM)  -      -
`)
	want := `{"name":"gm","kind":"tlcp","sign_cert":"SIGN.CRT\n","sign_key":"SIGN.KEY\n","enc_cert":"ENC.CRT\n","enc_key":"ENC.KEY\n"}`
	if body := f.last(t).Body; body != want {
		t.Errorf("sent %s\nwant %s", body, want)
	}
}

func TestCertDelAndMissingFiles(t *testing.T) {
	f := newFakeAPI(t, map[string]canned{"DELETE /v1/certs/site": {status: 204}})
	wantStdout(t, f.run("cert", "del", "site", "--if-match", "*"), "")
	if req := f.last(t); req.Method != "DELETE" || req.Header.Get("If-Match") != "*" {
		t.Errorf("cert del sent %s If-Match %q", req.Method, req.Header.Get("If-Match"))
	}
	missing := filepath.Join(t.TempDir(), "none.crt")
	r := f.run("cert", "set", "site", "--cert", missing, "--key", missing)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "sluice: read --cert: open "+missing+": no such file") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests, want only the delete", n)
	}
}
