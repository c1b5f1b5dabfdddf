// Package accesslog is the L7 proxy's access log: one line per request in
// nginx's combined format, as JSON or from an nginx-style template, to a
// file or to syslog.
//
// The proxy never waits for it. Log copies the entry into a bounded queue
// (or drops and counts it when the queue is full); one writer goroutine
// formats the queue into the sink and flushes it when the queue goes idle
// and at least every second.
package accesslog

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Entry is one request as the proxy saw it. Log copies it before it
// returns, so the caller may reuse the value (from a sync.Pool, say).
type Entry struct {
	Time                     time.Time     // when the request started
	RemoteAddr               string        // client ip:port
	Method, Host, URI, Proto string        // Host as the client sent it; URI with the query
	Status                   int           // 0: no response was sent
	RequestLength            int64         // bytes of the request read from the client: head and body
	BytesSent                int64         // bytes of the response sent to the client: head and body
	BodyBytesSent            int64         // the response body's part of BytesSent
	Duration                 time.Duration // request start → last byte sent
	Upstream                 string        // pool name
	UpstreamAddr             string        // the server that answered ("" if none)
	UpstreamTime             time.Duration // time to the upstream's response header
	Referer, UserAgent       string
	VServer, Location        string
	TLS                      string // "", "TLSv1.3", "TLCP", …
}

// DefaultBuffer is the queue length when Config.Buffer is 0.
const DefaultBuffer = 8192

// MaxBuffer is the largest Config.Buffer (an Entry is about 270 bytes).
const MaxBuffer = 1 << 18

// Config says whether, how and where to log.
type Config struct {
	Enabled bool `json:"enabled"`
	// Format is combined (the default), json or template.
	Format string `json:"format,omitempty"`
	// Template is the line of format template, with nginx-style variables
	// ($remote_addr or ${remote_addr}); see Variables. It is kept, not
	// used, with the other formats.
	Template string `json:"template,omitempty"`
	// Path is a file the log is appended to; it is created with mode 0640
	// in a directory that must exist.
	Path string `json:"path,omitempty"`
	// Syslog is udp://host:port, tcp://host:port, unix:///dev/log or
	// unixgram:///dev/log. Exactly one of Path and Syslog is set when
	// Enabled.
	Syslog string `json:"syslog,omitempty"`
	// Buffer is how many entries wait for the writer before new ones are
	// dropped; 0 means DefaultBuffer.
	Buffer int `json:"buffer,omitempty"`
}

// Validate checks c without touching the file system or the network. It
// returns an error for an unknown format, a template that does not compile
// (wrapping ErrUnknownVariable for an unknown variable), a malformed
// syslog address, both Path and Syslog, neither when Enabled, or a Buffer
// outside 0..MaxBuffer.
func (c Config) Validate() error {
	if _, err := newFormatter(c); err != nil {
		return err
	}
	if c.Buffer < 0 || c.Buffer > MaxBuffer {
		return fmt.Errorf("buffer %d: want 0 (default %d) to %d entries", c.Buffer, DefaultBuffer, MaxBuffer)
	}
	if c.Path != "" && c.Syslog != "" {
		return errors.New("path and syslog exclude each other")
	}
	if c.Enabled && c.Path == "" && c.Syslog == "" {
		return errors.New("enabled needs a path or a syslog address")
	}
	if c.Syslog != "" {
		if _, err := parseSyslog(c.Syslog); err != nil {
			return err
		}
	}
	return nil
}

// normalized returns c with the defaults filled in.
func (c Config) normalized() Config {
	if c.Format == "" {
		c.Format = "combined"
	}
	if c.Buffer == 0 {
		c.Buffer = DefaultBuffer
	}
	return c
}

// sameOutput says whether a and b (normalized) write the same lines to the
// same place, so that switching from one to the other needs no new sink.
func sameOutput(a, b Config) bool {
	if !a.Enabled || !b.Enabled {
		return a.Enabled == b.Enabled
	}
	return a.Format == b.Format && (a.Format != "template" || a.Template == b.Template) &&
		a.Path == b.Path && a.Syslog == b.Syslog
}

// ErrClosed is returned by Configure and Reopen after Close.
var ErrClosed = errors.New("access log closed")

// CloseTimeout bounds how long Close waits for the queue to be written.
var CloseTimeout = 5 * time.Second

// Stats are the logger's counters since New.
type Stats struct {
	Written uint64 `json:"written"` // entries handed to the file or the syslog server
	Dropped uint64 `json:"dropped"` // entries not queued because the queue was full
	Errors  uint64 `json:"errors"`  // entries lost to write errors or an unreachable syslog server
}

// output is a sink and the format of its lines.
type output struct {
	f formatter
	s sink
}

// handover is a switch to another output that the writer has yet to make:
// backlog, queued before the switch, still goes to the output before.
type handover struct {
	out     *output // nil: disabled
	backlog []Entry
}

// Logger writes access log entries. It is safe for concurrent use and must
// not be copied. The zero value is not usable; call New.
type Logger struct {
	on atomic.Bool // Log's lock-free check: enabled and not closed

	// mu guards the queue between Log, Configure and the writer goroutine.
	mu      sync.Mutex
	q       []Entry
	limit   int
	enabled bool
	closing bool
	next    []handover    // switches the writer has yet to make, in order
	wake    chan struct{} // capacity 1: "the queue or next changed"

	// cmu serializes Configure, Reopen and Close; it guards the fields
	// below. The writer goroutine never takes it.
	cmu     sync.Mutex
	cfg     Config // normalized
	f       formatter
	started bool
	closed  bool
	done    chan struct{} // closed when the writer goroutine returns

	c counters
}

// New returns a Logger configured with cfg, or the error of Configure. A
// disabled Logger starts no goroutine and opens nothing.
func New(cfg Config) (*Logger, error) {
	l := &Logger{wake: make(chan struct{}, 1), done: make(chan struct{}),
		limit: DefaultBuffer, cfg: Config{}.normalized()}
	l.c.log = slog.Default().With("component", "accesslog")
	if err := l.Configure(cfg); err != nil {
		return nil, err
	}
	return l, nil
}

// Enabled reports whether entries are being logged, so a caller can skip
// building them.
func (l *Logger) Enabled() bool { return l != nil && l.on.Load() }

// Log queues e to be written; it copies *e and never blocks. When the
// queue is full the entry is dropped and counted in Stats.Dropped. Log on a
// nil, disabled or closed Logger does nothing.
func (l *Logger) Log(e *Entry) {
	if l == nil || !l.on.Load() {
		return
	}
	l.mu.Lock()
	if !l.enabled {
		l.mu.Unlock()
		return
	}
	if len(l.q) >= l.limit {
		l.mu.Unlock()
		l.c.dropped.Add(1)
		return
	}
	l.q = append(l.q, *e)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Configure switches to cfg: on or off, another file or syslog server,
// another format or buffer size. It returns the error of Validate, of
// opening the file, or ErrClosed, and then keeps the old configuration
// working. Entries logged before Configure returns go to the old sink,
// later ones to the new sink; none is lost in the switch. A cfg that writes
// the same lines to the same place as now only changes the buffer size.
func (l *Logger) Configure(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.normalized()
	l.cmu.Lock()
	defer l.cmu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if sameOutput(l.cfg, cfg) {
		l.mu.Lock()
		l.limit = cfg.Buffer
		l.mu.Unlock()
		l.cfg = cfg
		return nil
	}
	if err := l.room(); err != nil {
		return err
	}
	var out *output
	if cfg.Enabled {
		f, err := newFormatter(cfg)
		if err != nil {
			return err
		}
		s, err := l.openSink(cfg)
		if err != nil {
			return err
		}
		out = &output{f: f, s: s}
		l.f = f
	}
	l.install(out, cfg.Buffer)
	l.cfg = cfg
	return nil
}

// openSink opens the file of cfg, or prepares its syslog connection (made
// by the writer, so an unreachable server does not fail Configure).
func (l *Logger) openSink(cfg Config) (sink, error) {
	if cfg.Path != "" {
		f, err := openFile(cfg.Path)
		if err != nil {
			return nil, err
		}
		return newFileSink(f, &l.c), nil
	}
	to, err := parseSyslog(cfg.Syslog)
	if err != nil {
		return nil, err
	}
	return newSyslogSink(to, &l.c), nil
}

// maxPending bounds the switches that wait for a writer stuck on a slow
// sink; each holds an open output.
const maxPending = 16

// errStuck is returned by Configure and Reopen when maxPending switches
// already wait for the writer.
var errStuck = errors.New("the writer is stuck on a slow sink and has not made the last switches yet; try again later")

// install hands out (nil: disabled) to the writer goroutine, starting it
// the first time. What is queued goes to the output before it. The caller
// holds cmu and has checked room().
func (l *Logger) install(out *output, limit int) {
	if out != nil && !l.started {
		l.started = true
		go l.run()
	}
	l.mu.Lock()
	l.limit = limit
	if l.started {
		l.next = append(l.next, handover{out: out, backlog: l.q})
		l.q = nil
	}
	l.enabled = out != nil && !l.closing
	l.on.Store(l.enabled)
	l.mu.Unlock()
	l.poke()
}

// room returns errStuck when no more switches can wait for the writer.
func (l *Logger) room() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.next) >= maxPending {
		return errStuck
	}
	return nil
}

func (l *Logger) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Reopen closes the log file and opens it again at the same path, for
// logrotate: entries logged before Reopen returns go to the old (renamed)
// file, later ones to the new. With syslog or when disabled it does
// nothing. It returns the error of opening the file, keeping the old one,
// or ErrClosed.
func (l *Logger) Reopen() error {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if !l.cfg.Enabled || l.cfg.Path == "" {
		return nil
	}
	if err := l.room(); err != nil {
		return err
	}
	f, err := openFile(l.cfg.Path)
	if err != nil {
		return err
	}
	l.install(&output{f: l.f, s: newFileSink(f, &l.c)}, l.cfg.Buffer)
	return nil
}

// Config returns the configuration in use, with defaults filled in.
func (l *Logger) Config() Config {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	return l.cfg
}

// Stats returns the counters.
func (l *Logger) Stats() Stats {
	if l == nil {
		return Stats{}
	}
	return Stats{Written: l.c.written.Load(), Dropped: l.c.dropped.Load(), Errors: l.c.errors.Load()}
}

// Close stops logging, writes what is queued and closes the sink. It waits
// at most CloseTimeout for a slow sink and then returns an error saying
// that queued entries may be lost. Later calls return nil.
func (l *Logger) Close() error {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.mu.Lock()
	l.closing, l.enabled = true, false
	l.on.Store(false)
	l.mu.Unlock()
	if !l.started {
		return nil
	}
	l.poke()
	t := time.NewTimer(CloseTimeout)
	defer t.Stop()
	select {
	case <-l.done:
		return nil
	case <-t.C:
		return fmt.Errorf("close: the writer is still busy after %s; queued entries may be lost", CloseTimeout)
	}
}

// flushEvery is the longest a written entry waits in a sink's buffer while
// the queue never goes idle.
const flushEvery = time.Second

// run is the writer goroutine: it takes the whole queue at once, writes
// it, and flushes when there is nothing more to take or every flushEvery.
func (l *Logger) run() {
	defer close(l.done)
	var (
		out     *output
		batch   []Entry
		flushed = time.Now()
	)
	for {
		l.mu.Lock()
		batch, l.q = l.q, batch[:0]
		next := l.next
		l.next = nil
		closing := l.closing
		l.mu.Unlock()

		for _, h := range next {
			l.write(out, h.backlog)
			clear(h.backlog)
			if out != nil {
				if err := out.s.close(); err != nil {
					l.c.report(err)
				}
			}
			out = h.out
			flushed = time.Now()
		}
		l.write(out, batch)
		busy := len(batch) > 0
		clear(batch)
		if closing {
			if out != nil {
				if err := out.s.close(); err != nil {
					l.c.report(err)
				}
			}
			return
		}
		if busy {
			if out != nil && time.Since(flushed) >= flushEvery {
				out.s.flush()
				flushed = time.Now()
			}
			continue
		}
		if out != nil {
			out.s.flush()
		}
		flushed = time.Now()
		<-l.wake
	}
}

// write gives entries to out; without an output (which the handover rules
// out) they count as dropped.
func (l *Logger) write(out *output, entries []Entry) {
	if out == nil {
		l.c.dropped.Add(uint64(len(entries)))
		return
	}
	for i := range entries {
		out.s.entry(out.f, &entries[i])
	}
}

// counters are the Stats, shared by Log, the writer and the sinks.
type counters struct {
	written, dropped, errors atomic.Uint64

	log      *slog.Logger
	reported atomic.Int64 // unix nanoseconds of the last error logged
	quiet    atomic.Uint64
}

// reportEvery limits error messages from a failing sink.
const reportEvery = 10 * time.Second

// fail counts n entries lost to err and logs err, at most every reportEvery.
func (c *counters) fail(n int, err error) {
	c.errors.Add(uint64(n))
	c.report(err)
}

func (c *counters) report(err error) {
	now := time.Now().UnixNano()
	last := c.reported.Load()
	if now-last < int64(reportEvery) || !c.reported.CompareAndSwap(last, now) {
		c.quiet.Add(1)
		return
	}
	c.log.Warn("access log write failed", "err", err, "suppressed", c.quiet.Swap(0))
}
