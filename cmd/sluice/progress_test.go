package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// chunks is a reader that returns one chunk per Read.
type chunks struct{ parts []string }

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	c.parts = c.parts[1:]
	return n, nil
}

func TestProgressIsThrottledAndCleared(t *testing.T) {
	var out bytes.Buffer
	clock := time.Unix(1_700_000_000, 0)
	p := newProgress(&chunks{[]string{"10.0.0.1\n", "10.0.0.2\n", "10.0.0.3\n10.0.0.4\n", "10.0.0.5\n"}}, 45, &out)
	p.now = func() time.Time { return clock }
	buf := make([]byte, 64)
	read := func() {
		t.Helper()
		if _, err := p.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	read() // the first read is shown at once
	clock = clock.Add(50 * time.Millisecond)
	read() // 50ms later: throttled
	clock = clock.Add(50 * time.Millisecond)
	read() // 100ms after the first update: shown
	clock = clock.Add(50 * time.Millisecond)
	read() // throttled
	if _, err := p.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("read at the end: %v", err)
	}
	p.finish()
	p.Read(buf) // after finish nothing is drawn
	want := "\r\033[Ksent 9 B of 45 B (20%), 1 lines" +
		"\r\033[Ksent 36 B of 45 B (80%), 4 lines" +
		"\r\033[Ksent 45 B of 45 B (100%), 5 lines; waiting for the daemon to apply it" +
		"\r\033[K"
	if out.String() != want {
		t.Errorf("progress wrote\n%q\nwant\n%q", out.String(), want)
	}
}

func TestProgressWithoutTotal(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(strings.NewReader("10.0.0.1\n"), 0, &out)
	io.Copy(io.Discard, p)
	if want := "\r\033[Ksent 9 B, 1 lines"; !strings.HasPrefix(out.String(), want) {
		t.Errorf("progress wrote %q, want it to start with %q", out.String(), want)
	}
}

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	pts, err = os.OpenFile(filepath.Join("/dev/pts", strconv.Itoa(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptm, pts
}

func TestIsTerminal(t *testing.T) {
	_, pts := openPTY(t)
	if !isTerminal(pts) {
		t.Error("a pty is not a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) {
		t.Error("a pipe is a terminal")
	}
}

// TestACLSetShowsProgressOnATerminal runs acl set with stderr on a pty and
// reads what the user's terminal would show.
func TestACLSetShowsProgressOnATerminal(t *testing.T) {
	ptm, pts := openPTY(t)
	f := newFakeAPI(t, map[string]canned{"PUT /v1/acl/lists/bad": {body: syncJSON}})
	path := filepath.Join(t.TempDir(), "bad.txt")
	writeFile(t, path, listFile)
	var out bytes.Buffer
	code := run([]string{"sluice", "--api", f.url, "acl", "set", "-f", path, "bad"}, strings.NewReader(""), &out, pts)
	if code != 0 || out.String() != syncTable {
		t.Fatalf("exit %d, stdout %q", code, out.String())
	}
	if err := ptm.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var seen []byte
	for i := 0; i < 100 && !bytes.Contains(seen, []byte("apply it\r\033[K")); i++ {
		n, err := ptm.Read(buf)
		seen = append(seen, buf[:n]...)
		if err != nil {
			break
		}
	}
	s := string(seen)
	final := fmt.Sprintf("sent %d B of %d B (100%%), 5 lines; waiting for the daemon to apply it", len(listFile), len(listFile))
	if !strings.Contains(s, final) || !strings.HasSuffix(s, "\r\033[K") {
		t.Errorf("the terminal showed %q; want the final progress line, then the line cleared", s)
	}
}
