package accesslog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// sink is where the writer goroutine puts formatted entries. Only that
// goroutine calls its methods, except close on a sink it never used.
type sink interface {
	// entry formats e with f and sends or buffers it.
	entry(f formatter, e *Entry)
	// flush sends what is buffered.
	flush()
	// close flushes and releases the destination.
	close() error
}

// flushSize is how many bytes a fileSink buffers before it writes them
// out without waiting for the queue to go idle.
const flushSize = 64 << 10

// fileSink writes lines to a file (or any writer) in batches.
type fileSink struct {
	w   io.WriteCloser
	buf []byte
	n   int // entries in buf
	c   *counters
}

// openFile opens path for appending, creating it with mode 0640. A
// missing directory is an error that names it.
func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o640)
	if err == nil {
		// The umask may have taken bits off; the mode is part of the contract.
		if err := f.Chmod(0o640); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	if errors.Is(err, fs.ErrExist) {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	}
	if err != nil {
		dir := filepath.Dir(path)
		if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
			return nil, fmt.Errorf("directory %s does not exist: %w", dir, err)
		}
		return nil, err
	}
	return f, nil
}

func newFileSink(w io.WriteCloser, c *counters) *fileSink {
	return &fileSink{w: w, c: c}
}

func (s *fileSink) entry(f formatter, e *Entry) {
	s.buf = f.append(s.buf, e)
	s.buf = append(s.buf, '\n')
	s.n++
	if len(s.buf) >= flushSize {
		s.flush()
	}
}

func (s *fileSink) flush() {
	if s.n == 0 {
		return
	}
	if _, err := s.w.Write(s.buf); err != nil {
		s.c.fail(s.n, err)
	} else {
		s.c.written.Add(uint64(s.n))
	}
	s.n = 0
	s.buf = s.buf[:0]
	if cap(s.buf) > 4*flushSize {
		s.buf = nil // a burst of huge lines; don't hold on to it
	}
}

func (s *fileSink) close() error {
	s.flush()
	return s.w.Close()
}

var _ sink = (*fileSink)(nil)
