// Command sltool is the traffic helper of the end-to-end tests and the demo:
// an echo server (TCP, UDP, HTTP) and probes that report whether a reply came.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sluicelb/sluice/l7/tlcp"
	"github.com/sluicelb/sluice/test/lab"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sltool serve -name N -tcp ADDR -udp ADDR -http ADDR | probe tcp|udp|http ADDR [-src IP] [-timeout D]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "probe":
		os.Exit(probe(os.Args[2:]))
	default:
		fmt.Fprintf(os.Stderr, "sltool: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	name := fs.String("name", "backend", "name the HTTP server answers with")
	tcp := fs.String("tcp", "", "TCP echo address")
	udp := fs.String("udp", "", "UDP echo address")
	httpAddr := fs.String("http", "", "HTTP address")
	tlcpAddr := fs.String("tlcp", "", "HTTP-over-TLCP address (needs -tlcp-certs)")
	tlcpCerts := fs.String("tlcp-certs", "", "directory written by `sluice tlcp gen-certs`; its name is -tlcp-name")
	tlcpName := fs.String("tlcp-name", "localhost", "the name the TLCP certificates are for")
	_ = fs.Parse(args)
	errc := make(chan error, 4)
	if *tlcpAddr != "" {
		base := filepath.Join(*tlcpCerts, *tlcpName)
		pair, err := tlcp.LoadX509KeyPair(base+"-sign.crt", base+"-sign.key", base+"-enc.crt", base+"-enc.key")
		if err != nil {
			fail(err)
		}
		ln, err := tlcp.Listen("tcp", *tlcpAddr, &tlcp.Config{Certificates: []tlcp.Certificate{pair}})
		if err != nil {
			fail(err)
		}
		h := httpHandler(*name)
		go func() {
			errc <- http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Served-Over", "TLCP")
				h.ServeHTTP(w, r)
			}))
		}()
	}
	if *tcp != "" {
		ln, err := net.Listen("tcp", *tcp)
		if err != nil {
			fail(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					errc <- err
					return
				}
				go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
			}
		}()
	}
	if *udp != "" {
		pc, err := net.ListenPacket("udp", *udp)
		if err != nil {
			fail(err)
		}
		go func() {
			buf := make([]byte, 65535)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					errc <- err
					return
				}
				if string(buf[:n]) == "whoami" { // which backend answers, for the spread of UDP flows
					_, _ = pc.WriteTo([]byte(*name), from)
					continue
				}
				_, _ = pc.WriteTo(buf[:n], from)
			}
		}()
	}
	if *httpAddr != "" {
		// HTTP/1.1 and h2c, so gRPC can reach it over HTTP/2.
		var protos http.Protocols
		protos.SetHTTP1(true)
		protos.SetUnencryptedHTTP2(true)
		srv := &http.Server{Addr: *httpAddr, Handler: httpHandler(*name), Protocols: &protos}
		go func() { errc <- srv.ListenAndServe() }()
	}
	fmt.Println("ready")
	fail(<-errc)
}

// httpHandler answers with the server's name and what it saw of the
// forwarding headers; /ws upgrades and echoes lines upper-cased (a minimal
// WebSocket-like echo: the proxy only needs to pass the upgrade through);
// a gRPC request gets its message back with grpc-status 0 in a trailer.
func httpHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
		switch {
		case r.Header.Get("Upgrade") == "websocket":
			lab.UpgradeEcho(w, r)
		case strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc"):
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status")
			w.Header().Set("X-Upstream-Proto", r.Proto)
			body, _ := io.ReadAll(r.Body)
			w.Write(body)
			w.Header().Set("Grpc-Status", "0")
		default:
			n, _ := io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Seen-Body-Bytes", strconv.FormatInt(n, 10))
			fmt.Fprintf(w, "hello from %s\n", name)
		}
	})
}

// probe exits 0 when a reply came back, 1 when none did within the timeout.
func probe(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "probe: want tcp|udp|http ADDR")
		return 2
	}
	proto, addr := args[0], args[1]
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	src := fs.String("src", "", "source address")
	timeout := fs.Duration("timeout", time.Second, "how long to wait for a reply")
	_ = fs.Parse(args[2:])
	d := net.Dialer{Timeout: *timeout}
	if *src != "" {
		ip := net.ParseIP(*src)
		if proto == "udp" {
			d.LocalAddr = &net.UDPAddr{IP: ip}
		} else {
			d.LocalAddr = &net.TCPAddr{IP: ip}
		}
	}
	if proto == "http" {
		c := http.Client{Timeout: *timeout, Transport: &http.Transport{DialContext: d.DialContext}}
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			fmt.Println("no reply:", err)
			return 1
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Print(string(b))
		return 0
	}
	c, err := d.Dial(proto, addr)
	if err != nil {
		fmt.Println("no reply:", err)
		return 1
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(*timeout))
	msg := []byte("ping\n")
	if _, err := c.Write(msg); err != nil {
		fmt.Println("no reply:", err)
		return 1
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			fmt.Println("no reply: timeout")
		} else {
			fmt.Println("no reply:", err)
		}
		return 1
	}
	fmt.Println("reply")
	return 0
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sltool:", err)
	os.Exit(1)
}
