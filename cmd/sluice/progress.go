package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progressEvery is the least time between two progress updates.
const progressEvery = 100 * time.Millisecond

// progress wraps the reader of an upload and reports on w how much was read:
// bytes (of total, when known) and lines, at most once per progressEvery, on
// one line that finish clears. Read is called by the HTTP transport's
// goroutine and finish by the command, so the state is behind mu.
type progress struct {
	r     io.Reader
	w     io.Writer
	total int64
	now   func() time.Time

	mu          sync.Mutex
	sent, lines int64
	last        time.Time
	shown, done bool
}

func newProgress(r io.Reader, total int64, w io.Writer) *progress {
	return &progress{r: r, w: w, total: total, now: time.Now}
}

// Read reads from the wrapped reader and updates the progress line.
func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent += int64(n)
	p.lines += int64(bytes.Count(b[:n], []byte{'\n'}))
	if p.done {
		return n, err
	}
	if err == io.EOF {
		p.draw("; waiting for the daemon to apply it")
	} else if now := p.now(); !p.shown || now.Sub(p.last) >= progressEvery {
		p.last = now
		p.draw("")
	}
	return n, err
}

func (p *progress) draw(suffix string) {
	p.shown = true
	if p.total > 0 {
		fmt.Fprintf(p.w, "\r\033[Ksent %s of %s (%d%%), %s lines%s", humanBytes(uint64(p.sent)), humanBytes(uint64(p.total)),
			p.sent*100/p.total, grouped(int(p.lines)), suffix)
		return
	}
	fmt.Fprintf(p.w, "\r\033[Ksent %s, %s lines%s", humanBytes(uint64(p.sent)), grouped(int(p.lines)), suffix)
}

// finish clears the progress line; later reads draw nothing.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown && !p.done {
		fmt.Fprint(p.w, "\r\033[K")
	}
	p.done = true
}

var _ io.Reader = (*progress)(nil)
