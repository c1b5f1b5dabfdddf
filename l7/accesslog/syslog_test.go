package accesslog

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSyslogUDPGetsOneRFC5424MessagePerEntry(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	l := newLogger(t, Config{Enabled: true, Syslog: "udp://" + pc.LocalAddr().String()})
	l.Log(entry(1))
	l.Log(entry(2))

	host, _ := os.Hostname()
	for i := 1; i <= 2; i++ {
		buf := make([]byte, 4096)
		_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		want := "<190>1 2026-11-24T10:00:00.000000Z " + host + " sluice " + strconv.Itoa(os.Getpid()) + " - - " + combinedLine(i)
		if got := string(buf[:n]); got != want {
			t.Errorf("message %d:\n got %q\nwant %q", i, got, want)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st != (Stats{Written: 2}) {
		t.Errorf("stats %+v", st)
	}
}

func TestSyslogTCPFramesWithNewlines(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := newLogger(t, Config{Enabled: true, Syslog: "tcp://" + ln.Addr().String(), Format: "json"})
	l.Log(entry(1))
	l.Log(entry(2))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	re := regexp.MustCompile(`^<190>1 2026-11-24T10:00:00\.000000Z \S+ sluice \d+ - - \{"time":.*"uri":"/(\d)".*\}\n$`)
	for i := 1; i <= 2; i++ {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if m := re.FindStringSubmatch(line); m == nil || m[1] != strconv.Itoa(i) {
			t.Errorf("message %d: %q", i, line)
		}
	}
}

func TestSyslogServerDownDoesNotBlock(t *testing.T) {
	// A port nobody listens on: connection refused, at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	l := newLogger(t, Config{Enabled: true, Syslog: "tcp://" + addr})
	start := time.Now()
	for i := range 1000 {
		l.Log(entry(i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	if st := l.Stats(); st.Errors+st.Dropped != 1000 || st.Errors == 0 || st.Written != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestSyslogReconnects(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	l := newLogger(t, Config{Enabled: true, Syslog: "tcp://" + addr})
	l.Log(entry(1)) // refused: counted, and the next dial waits
	deadline := time.Now().Add(5 * time.Second)
	for l.Stats().Errors == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no error counted")
		}
		time.Sleep(time.Millisecond)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		got <- line
	}()
	// Keep logging until the backoff lets a dial through.
	for i := 2; ; i++ {
		l.Log(entry(i))
		select {
		case line := <-got:
			if !strings.Contains(line, `"GET /`) {
				t.Errorf("got %q", line)
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("never reconnected: %+v", l.Stats())
		}
	}
}

func TestSyslogUnixUsesTheLocalFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	pc, err := net.ListenPacket("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	l := newLogger(t, Config{Enabled: true, Syslog: "unix://" + path, Format: "template", Template: "$status $request_uri"})
	l.Log(entry(7))
	buf := make([]byte, 4096)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	want := "<190>Nov 24 10:00:00 sluice[" + strconv.Itoa(os.Getpid()) + "]: 200 /7"
	if got := string(buf[:n]); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseSyslog(t *testing.T) {
	for in, want := range map[string]syslogAddr{
		"udp://127.0.0.1:5514":  {"udp", "127.0.0.1:5514"},
		"udp://logs":            {"udp", "logs:514"},
		"tcp://[2001:db8::1]":   {"tcp", "[2001:db8::1]:514"},
		"unix:///dev/log":       {"unix", "/dev/log"},
		"unixgram:///run/x.log": {"unixgram", "/run/x.log"},
	} {
		got, err := parseSyslog(in)
		if err != nil || got != want {
			t.Errorf("parseSyslog(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "/dev/log", "udp://h:0", "udp://h/x", "tcp://", "unix://host/dev/log", "file:///x"} {
		if _, err := parseSyslog(in); err == nil {
			t.Errorf("parseSyslog(%q) accepted", in)
		}
	}
}
