package main

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emmansun/gmsm/smx509"
	"github.com/urfave/cli/v2"

	"github.com/sluicelb/sluice/mgmt/client"
)

func certCommand() *cli.Command {
	return &cli.Command{
		Name:   "cert",
		Usage:  "certificates of the L7 proxy's TLS and TLCP virtual servers, picked by SNI",
		Action: groupAction,
		Subcommands: []*cli.Command{
			certSetCommand(),
			certListCommand(),
			certShowCommand(),
			certDelCommand(),
		},
	}
}

func certSetCommand() *cli.Command {
	return &cli.Command{
		Name:  "set",
		Usage: "add or replace a certificate; the next handshake uses it, open connections keep theirs",
		Description: "TLS:  sluice cert set NAME --cert FILE --key FILE [--default]\n" +
			"TLCP: sluice cert set NAME --kind tlcp --sign-cert FILE --sign-key FILE --enc-cert FILE --enc-key FILE [--default]\n" +
			"The names a certificate serves come from the certificate itself; --default serves a client\n" +
			"whose SNI matches no certificate.",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "kind", Value: "tls", Usage: "tls or tlcp"},
			&cli.StringFlag{Name: "cert", Usage: "tls: PEM `FILE` of the certificate (and its chain)"},
			&cli.StringFlag{Name: "key", Usage: "tls: PEM `FILE` of its key"},
			&cli.StringFlag{Name: "sign-cert", Usage: "tlcp: PEM `FILE` of the signing certificate"},
			&cli.StringFlag{Name: "sign-key", Usage: "tlcp: PEM `FILE` of its key"},
			&cli.StringFlag{Name: "enc-cert", Usage: "tlcp: PEM `FILE` of the encryption certificate"},
			&cli.StringFlag{Name: "enc-key", Usage: "tlcp: PEM `FILE` of its key"},
			&cli.BoolFlag{Name: "default", Usage: "serve clients whose SNI matches no certificate"},
			ifMatchOf("certificate"), outputFlag(),
		},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			cert, err := certFromFlags(c)
			if err != nil {
				return err
			}
			got, err := api.SetCert(ctx, cert, c.String("if-match"))
			if err != nil {
				return err
			}
			return render(c, got, func(w io.Writer) { certTable(w, got) })
		}),
	}
}

var (
	tlsCertFlags  = []string{"cert", "key"}
	tlcpCertFlags = []string{"sign-cert", "sign-key", "enc-cert", "enc-key"}
)

// certFromFlags checks that the flags of the kind, and only those, are
// given (usage errors), and reads their files.
func certFromFlags(c *cli.Context) (client.Cert, error) {
	cert := client.Cert{Name: c.Args().First(), Kind: c.String("kind"), Default: c.Bool("default")}
	want, other := tlsCertFlags, tlcpCertFlags
	switch cert.Kind {
	case "tls":
	case "tlcp":
		want, other = other, want
	default:
		return cert, usageError(c, "cert set: --kind %q: want tls or tlcp", cert.Kind)
	}
	for _, f := range other {
		if c.IsSet(f) {
			return cert, usageError(c, "cert set: --%s is not for --kind %s", f, cert.Kind)
		}
	}
	var missing []string
	for _, f := range want {
		if !c.IsSet(f) {
			missing = append(missing, "--"+f)
		}
	}
	if len(missing) > 0 {
		return cert, usageError(c, "cert set: --kind %s needs %s", cert.Kind, strings.Join(missing, ", "))
	}
	for _, f := range []struct {
		flag string
		dst  *string
	}{{"cert", &cert.CertPEM}, {"key", &cert.KeyPEM}, {"sign-cert", &cert.SignCert}, {"sign-key", &cert.SignKey},
		{"enc-cert", &cert.EncCert}, {"enc-key", &cert.EncKey}} {
		pem, err := readPEMFlag(c, f.flag)
		if err != nil {
			return cert, err
		}
		*f.dst = pem
	}
	return cert, nil
}

// certInfo is what a table shows of a PEM certificate: its leaf's subject,
// names and expiry.
type certInfo struct {
	subject, names, notAfter string
}

func parseCertInfo(p string) certInfo {
	if p == "" {
		return certInfo{"-", "-", "-"}
	}
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return certInfo{"(no PEM)", "-", "-"}
	}
	crt, err := smx509.ParseCertificate(block.Bytes)
	if err != nil {
		return certInfo{"(unparsable)", "-", "-"}
	}
	names := append([]string(nil), crt.DNSNames...)
	for _, ip := range crt.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		names = []string{"-"}
	}
	subject := crt.Subject.CommonName
	if subject == "" {
		subject = crt.Subject.String()
	}
	return certInfo{subject, strings.Join(names, ","), crt.NotAfter.UTC().Format(time.DateOnly)}
}

// leaf is the certificate that names what a cert serves: the signing one for TLCP.
func leaf(v client.CertView) string {
	if v.Kind == "tlcp" {
		return v.SignCert
	}
	return v.Cert
}

func certListCommand() *cli.Command {
	return &cli.Command{
		Name: "list", Usage: "list the certificates", Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			certs, err := api.Certs(ctx)
			if err != nil {
				return err
			}
			if certs == nil {
				certs = []client.CertView{}
			}
			return render(c, certs, func(w io.Writer) {
				row(w, "NAME", "KIND", "DEFAULT", "SUBJECT", "NAMES", "NOT AFTER", "VERSION")
				for _, v := range certs {
					i := parseCertInfo(leaf(v))
					row(w, v.Name, v.Kind, yesNo(v.Default), i.subject, i.names, i.notAfter, v.Version)
				}
			})
		}),
	}
}

func certTable(w io.Writer, v client.CertView) {
	row(w, "name", v.Name)
	row(w, "kind", v.Kind)
	row(w, "default", yesNo(v.Default))
	row(w, "version", v.Version)
	fmt.Fprintln(w)
	row(w, "CERTIFICATE", "SUBJECT", "NAMES", "NOT AFTER")
	if v.Kind == "tlcp" {
		for _, p := range []struct{ name, pem string }{{"sign", v.SignCert}, {"enc", v.EncCert}} {
			i := parseCertInfo(p.pem)
			row(w, p.name, i.subject, i.names, i.notAfter)
		}
		return
	}
	i := parseCertInfo(v.Cert)
	row(w, "cert", i.subject, i.names, i.notAfter)
}

func certShowCommand() *cli.Command {
	return &cli.Command{
		Name: "show", Usage: "show a certificate (never its keys; -o json has the PEM)", ArgsUsage: "NAME", Flags: []cli.Flag{outputFlag()},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			v, err := api.GetCert(ctx, c.Args().First())
			if err != nil {
				return err
			}
			return render(c, v, func(w io.Writer) { certTable(w, v) })
		}),
	}
}

func certDelCommand() *cli.Command {
	return &cli.Command{
		Name: "del", Usage: "delete a certificate", ArgsUsage: "NAME", Flags: []cli.Flag{ifMatchOf("certificate")},
		Action: apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
			if err := wantArgs(c, 1, 1); err != nil {
				return err
			}
			return api.DeleteCert(ctx, c.Args().First(), c.String("if-match"))
		}),
	}
}
