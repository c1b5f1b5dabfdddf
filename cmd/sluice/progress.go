package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progress reports how much of an upload was read, at most ten times a second.
type progress struct {
	r     io.Reader
	w     io.Writer
	total int64
	read  int64
	lines int64
	last  time.Time
	start time.Time
}

func newProgress(r io.Reader, total int64, w io.Writer) *progress {
	return &progress{r: r, w: w, total: total, start: time.Now()}
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.read += int64(n)
	for _, c := range b[:n] {
		if c == '\n' {
			p.lines++
		}
	}
	if time.Since(p.last) > 100*time.Millisecond {
		p.last = time.Now()
		if p.total > 0 {
			fmt.Fprintf(p.w, "\r\033[Ksending %s / %s (%d%%), %d lines", humanBytes(uint64(p.read)), humanBytes(uint64(p.total)), p.read*100/p.total, p.lines)
		} else {
			fmt.Fprintf(p.w, "\r\033[Ksending %s, %d lines", humanBytes(uint64(p.read)), p.lines)
		}
	}
	return n, err
}

// done clears the progress line.
func (p *progress) done() { fmt.Fprint(p.w, "\r\033[K") }
