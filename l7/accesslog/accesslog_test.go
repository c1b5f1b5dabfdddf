package accesslog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// entry returns knownEntry with its URI numbered, so lines can be told apart.
func entry(n int) *Entry {
	e := knownEntry()
	e.URI = fmt.Sprintf("/%d", n)
	return &e
}

func combinedLine(n int) string {
	return fmt.Sprintf(`192.0.2.10 - - [24/Nov/2026:10:00:00 +0000] "GET /%d HTTP/1.1" 200 5120 "https://example.com/" "curl/8.5.0"`, n)
}

func newLogger(t *testing.T, cfg Config) *Logger {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if s == "" {
		return nil
	}
	if !strings.HasSuffix(s, "\n") {
		t.Errorf("%s does not end in a newline: %q", path, s)
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func wantLines(t *testing.T, path string, want ...string) {
	t.Helper()
	got := readLines(t, path)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %q\nwant %q", filepath.Base(path), got, want)
	}
}

// waitWritten waits (bounded) until the logger has written n entries.
func waitWritten(t *testing.T, l *Logger, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for l.Stats().Written < n {
		if time.Now().After(deadline) {
			t.Fatalf("written %d, want %d: %+v", l.Stats().Written, n, l.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFileGetsCombinedLinesWithMode0640(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l := newLogger(t, Config{Enabled: true, Path: path})
	l.Log(entry(1))
	l.Log(entry(2))
	// Flushed when the queue goes idle, not only at Close.
	waitWritten(t, l, 2)
	wantLines(t, path, combinedLine(1), combinedLine(2))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if st := l.Stats(); st != (Stats{Written: 2}) {
		t.Errorf("stats %+v", st)
	}
	l.Log(entry(3)) // after Close: ignored
	wantLines(t, path, combinedLine(1), combinedLine(2))
}

func TestFileIsAppended(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, []byte("earlier line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLogger(t, Config{Enabled: true, Path: path, Format: "json"})
	l.Log(entry(1))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := readLines(t, path)
	if len(got) != 2 || got[0] != "earlier line" || !strings.HasPrefix(got[1], `{"time":"2026-11-24T10:00:00.000Z"`) {
		t.Errorf("%q", got)
	}
}

func TestMissingDirectoryIsAClearError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "no", "such")
	_, err := New(Config{Enabled: true, Path: filepath.Join(dir, "access.log")})
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "directory "+dir+" does not exist") {
		t.Fatalf("err = %v", err)
	}
}

func TestValidate(t *testing.T) {
	ok := []Config{
		{},
		{Enabled: false, Path: "/x", Format: "json", Buffer: 10},
		{Enabled: true, Path: "/var/log/sluice/access.log"},
		{Enabled: true, Syslog: "udp://127.0.0.1:514"},
		{Enabled: true, Syslog: "udp://[::1]"},
		{Enabled: true, Syslog: "tcp://logs.example.com:6514"},
		{Enabled: true, Syslog: "unix:///dev/log"},
		{Enabled: true, Syslog: "unixgram:///dev/log"},
		{Enabled: true, Path: "/x", Format: "json", Template: "$kept_for_later"},
		{Enabled: true, Path: "/x", Format: "template", Template: "$status"},
	}
	for _, c := range ok {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := map[string]Config{
		"neither":          {Enabled: true},
		"both":             {Enabled: true, Path: "/x", Syslog: "udp://h:514"},
		"format":           {Enabled: true, Path: "/x", Format: "xml"},
		"empty template":   {Enabled: true, Path: "/x", Format: "template"},
		"unknown variable": {Path: "/x", Format: "template", Template: "$nope"},
		"buffer":           {Enabled: true, Path: "/x", Buffer: -1},
		"big buffer":       {Enabled: true, Path: "/x", Buffer: MaxBuffer + 1},
		"scheme":           {Enabled: true, Syslog: "http://h:514"},
		"no host":          {Enabled: true, Syslog: "udp://"},
		"port":             {Enabled: true, Syslog: "udp://h:99999"},
		"unix host":        {Enabled: true, Syslog: "unix://dev/log"},
	}
	for name, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, c)
		}
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
}

func TestConfigureSwitches(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	l := newLogger(t, Config{Enabled: true, Path: a})

	l.Log(entry(1))
	if err := l.Configure(Config{Enabled: true, Path: b}); err != nil {
		t.Fatal(err)
	}
	l.Log(entry(2))
	// A new format on the same file.
	if err := l.Configure(Config{Enabled: true, Path: b, Format: "template", Template: "$request_uri $status"}); err != nil {
		t.Fatal(err)
	}
	l.Log(entry(3))
	// Off: nothing is written, nothing counted.
	if err := l.Configure(Config{Enabled: false, Path: b}); err != nil {
		t.Fatal(err)
	}
	l.Log(entry(4))
	// On again, back to a.
	if err := l.Configure(Config{Enabled: true, Path: a, Format: "json"}); err != nil {
		t.Fatal(err)
	}
	l.Log(entry(5))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := readLines(t, a)
	if len(got) != 2 || got[0] != combinedLine(1) || !strings.Contains(got[1], `"uri":"/5"`) {
		t.Errorf("a.log: %q", got)
	}
	wantLines(t, b, combinedLine(2), "/3 200")
	if st := l.Stats(); st != (Stats{Written: 4}) {
		t.Errorf("stats %+v", st)
	}
}

func TestInvalidConfigureKeepsTheOldOne(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	l := newLogger(t, Config{Enabled: true, Path: path})
	l.Log(entry(1))
	for _, c := range []Config{
		{Enabled: true, Path: path, Format: "template", Template: "$remote_addr $bogus"},
		{Enabled: true, Path: filepath.Join(dir, "missing", "x.log")},
		{Enabled: true, Path: dir}, // a directory
		{Enabled: true},
	} {
		if err := l.Configure(c); err == nil {
			t.Errorf("Configure(%+v) accepted", c)
		}
	}
	if err := l.Configure(Config{Enabled: true, Path: path, Format: "template", Template: "$bogus"}); !errors.Is(err, ErrUnknownVariable) || !strings.Contains(err.Error(), "$bogus") {
		t.Errorf("err = %v; want ErrUnknownVariable naming $bogus", err)
	}
	l.Log(entry(2))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantLines(t, path, combinedLine(1), combinedLine(2))
	if got := l.Config(); got.Path != path || got.Format != "combined" || got.Buffer != DefaultBuffer {
		t.Errorf("Config() = %+v", got)
	}
}

func TestSameConfigDoesNotReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l := newLogger(t, Config{Enabled: true, Path: path})
	l.Log(entry(1))
	waitWritten(t, l, 1)
	// The proxy calls Configure on every change of its configuration. The
	// same output must keep its file, even after it was moved away.
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := l.Configure(Config{Enabled: true, Path: path, Buffer: 100, Template: "ignored"}); err != nil {
		t.Fatal(err)
	}
	l.Log(entry(2))
	l.Close()
	wantLines(t, path+".moved", combinedLine(1), combinedLine(2))
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the file was reopened: %v", err)
	}
}

func TestReopenAfterLogrotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l := newLogger(t, Config{Enabled: true, Path: path})
	l.Log(entry(1))
	waitWritten(t, l, 1)
	// logrotate: rename, then SIGUSR1.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	l.Log(entry(2)) // logged before Reopen: still goes to the renamed file
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Log(entry(3))
	l.Log(entry(4))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantLines(t, path+".1", combinedLine(1), combinedLine(2))
	wantLines(t, path, combinedLine(3), combinedLine(4))
	if err := l.Reopen(); !errors.Is(err, ErrClosed) {
		t.Errorf("Reopen after Close: %v", err)
	}
	if err := l.Configure(Config{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Configure after Close: %v", err)
	}
}

func TestReopenFailureKeepsTheOldFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "access.log")
	l := newLogger(t, Config{Enabled: true, Path: path})
	moved := filepath.Join(filepath.Dir(dir), "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Reopen = %v", err)
	}
	l.Log(entry(1))
	l.Close()
	wantLines(t, filepath.Join(moved, "access.log"), combinedLine(1))
}

func TestDisabledLoggerIsCheap(t *testing.T) {
	l := newLogger(t, Config{})
	if l.started {
		t.Error("a disabled logger started its writer")
	}
	e := entry(1)
	if n := testing.AllocsPerRun(100, func() { l.Log(e) }); n != 0 {
		t.Errorf("Log allocates %v times when disabled", n)
	}
	if err := l.Reopen(); err != nil {
		t.Error(err)
	}
	if st := l.Stats(); st != (Stats{}) {
		t.Errorf("stats %+v", st)
	}
	var nilLogger *Logger
	nilLogger.Log(entry(1))
}

// blockingWriter blocks every Write until release is closed.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	data    []byte
	entered chan struct{}
	once    sync.Once
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	w.data = append(w.data, p...)
	return len(p), nil
}

func (w *blockingWriter) Close() error { return nil }

func TestBlockedSinkDropsInsteadOfBlocking(t *testing.T) {
	l := newLogger(t, Config{Buffer: 16})
	w := &blockingWriter{release: make(chan struct{}), entered: make(chan struct{})}
	l.cmu.Lock()
	l.cfg = Config{Enabled: true, Path: "test", Buffer: 16}.normalized()
	l.install(&output{f: jsonFormat{}, s: newFileSink(w, &l.c)}, 16)
	l.cmu.Unlock()

	l.Log(entry(0))
	select {
	case <-w.entered: // the writer is stuck in Write
	case <-time.After(5 * time.Second):
		t.Fatal("the writer never wrote")
	}
	const n = 10000
	start := time.Now()
	for i := 1; i <= n; i++ {
		l.Log(entry(i))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("%d Log calls with a stuck sink took %v", n, d)
	}
	st := l.Stats()
	if st.Dropped != n-16 || st.Written != 0 {
		t.Errorf("stats with a stuck sink %+v; want %d dropped", st, n-16)
	}
	close(w.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	st = l.Stats()
	if st.Written != 17 || st.Written+st.Dropped != n+1 {
		t.Errorf("stats after release %+v", st)
	}
	if lines := strings.Count(string(w.data), "\n"); lines != 17 {
		t.Errorf("%d lines written, want 17", lines)
	}
}

func TestSwitchesWhileTheWriterIsStuck(t *testing.T) {
	dir := t.TempDir()
	l := newLogger(t, Config{})
	w := &blockingWriter{release: make(chan struct{}), entered: make(chan struct{})}
	l.cmu.Lock()
	l.cfg = Config{Enabled: true, Path: "stuck", Buffer: 16}.normalized()
	l.install(&output{f: jsonFormat{}, s: newFileSink(w, &l.c)}, 16)
	l.cmu.Unlock()
	l.Log(entry(0))
	<-w.entered

	// Each switch waits for the writer with what was logged before it.
	var paths []string
	for i := 1; ; i++ {
		l.Log(entry(i))
		p := filepath.Join(dir, fmt.Sprintf("%d.log", i))
		err := l.Configure(Config{Enabled: true, Path: p, Buffer: 16})
		if err != nil {
			if i != maxPending+1 || !strings.Contains(err.Error(), "stuck") {
				t.Fatalf("switch %d: %v", i, err)
			}
			break
		}
		paths = append(paths, p)
	}
	l.Log(entry(100))
	close(w.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Entry i was logged before the switch to i.log, so it went to the file
	// before: entry 1 to the stuck writer, entry i+1 to i.log.
	if got := strings.Count(string(w.data), "\n"); got != 2 {
		t.Errorf("stuck writer got %d lines, want 2", got)
	}
	for i, p := range paths {
		n := i + 2
		if n == maxPending+1 {
			wantLines(t, p, combinedLine(n), combinedLine(100))
		} else {
			wantLines(t, p, combinedLine(n))
		}
	}
	if st := l.Stats(); st != (Stats{Written: maxPending + 3}) {
		t.Errorf("stats %+v", st)
	}
}

func TestCloseGivesUpOnAStuckSink(t *testing.T) {
	old := CloseTimeout
	CloseTimeout = 100 * time.Millisecond
	defer func() { CloseTimeout = old }()
	l, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	w := &blockingWriter{release: make(chan struct{}), entered: make(chan struct{})}
	defer close(w.release)
	l.cmu.Lock()
	l.install(&output{f: jsonFormat{}, s: newFileSink(w, &l.c)}, 16)
	l.cmu.Unlock()
	l.Log(entry(0))
	<-w.entered
	start := time.Now()
	if err := l.Close(); err == nil || !strings.Contains(err.Error(), "may be lost") {
		t.Errorf("Close = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
}

func TestConcurrentLogConfigureReopen(t *testing.T) {
	dir := t.TempDir()
	paths := []string{filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")}
	l := newLogger(t, Config{Enabled: true, Path: paths[0], Buffer: MaxBuffer})
	const goroutines, each = 8, 2000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := knownEntry()
			for i := range each {
				e.URI = fmt.Sprintf("/%d/%d", g, i)
				l.Log(&e) // the same Entry value, reused at once
			}
		}()
	}
	stop := make(chan struct{})
	var cwg sync.WaitGroup
	cwg.Add(1)
	go func() {
		defer cwg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			format := []string{"combined", "json"}[i%2]
			if err := l.Configure(Config{Enabled: true, Path: paths[i%2], Format: format, Buffer: MaxBuffer}); err != nil {
				t.Error(err)
			}
			if err := l.Reopen(); err != nil {
				t.Error(err)
			}
			_ = l.Stats()
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	close(stop)
	cwg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range paths {
		for _, line := range readLines(t, p) {
			var uri string
			if strings.HasPrefix(line, "{") {
				i := strings.Index(line, `"uri":"`)
				uri = line[i+7 : i+7+strings.IndexByte(line[i+7:], '"')]
			} else if _, err := fmt.Sscanf(line, "192.0.2.10 - - [24/Nov/2026:10:00:00 +0000] \"GET %s HTTP/1.1\"", &uri); err != nil {
				t.Fatalf("torn line %q: %v", line, err)
			}
			if seen[uri] {
				t.Errorf("%s twice", uri)
			}
			seen[uri] = true
		}
	}
	st := l.Stats()
	if len(seen) != goroutines*each || st.Written != goroutines*each || st.Dropped != 0 || st.Errors != 0 {
		t.Errorf("%d distinct lines, stats %+v; want %d written", len(seen), st, goroutines*each)
	}
}

func TestCloseFlushesTheQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l := newLogger(t, Config{Enabled: true, Path: path})
	const n = 5000
	want := make([]string, n)
	for i := range n {
		l.Log(entry(i))
		want[i] = combinedLine(i)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantLines(t, path, want...)
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// failingWriter fails every Write.
type failingWriter struct{}

func (failingWriter) Write(p []byte) (int, error) { return 0, errors.New("no space left on device") }
func (failingWriter) Close() error                { return nil }

func TestWriteErrorsAreCounted(t *testing.T) {
	l := newLogger(t, Config{})
	l.cmu.Lock()
	l.install(&output{f: jsonFormat{}, s: newFileSink(failingWriter{}, &l.c)}, 16)
	l.cmu.Unlock()
	l.Log(entry(1))
	l.Log(entry(2))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Errors != 2 || st.Written != 0 {
		t.Errorf("stats %+v", st)
	}
}

// BenchmarkLog is what a request pays: Log from every CPU as fast as it
// goes, so the writer falls behind and most entries are dropped (reported
// as dropped/op); either way Log returns at once.
func BenchmarkLog(b *testing.B) {
	l, err := New(Config{Enabled: true, Path: filepath.Join(b.TempDir(), "access.log")})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		e := knownEntry()
		for pb.Next() {
			l.Log(&e)
		}
	})
	b.StopTimer()
	l.Close()
	st := l.Stats()
	b.ReportMetric(float64(st.Dropped)/float64(b.N), "dropped/op")
}

// BenchmarkLogSustained is the whole path, Log to the file, at the rate the
// writer keeps up with: it waits for the queue to drain every 1024 entries.
func BenchmarkLogSustained(b *testing.B) {
	for _, format := range []string{"combined", "json"} {
		b.Run(format, func(b *testing.B) {
			l, err := New(Config{Enabled: true, Format: format, Path: filepath.Join(b.TempDir(), "access.log")})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			e := knownEntry()
			b.ReportAllocs()
			logged := uint64(0)
			for b.Loop() {
				l.Log(&e)
				if logged++; logged%1024 == 0 {
					for l.Stats().Written < logged {
						runtime.Gosched()
					}
				}
			}
			if st := l.Stats(); st.Dropped != 0 {
				b.Errorf("stats %+v", st)
			}
		})
	}
}

func BenchmarkFormat(b *testing.B) {
	for _, cfg := range []Config{{Format: "combined"}, {Format: "json"}} {
		b.Run(cfg.Format, func(b *testing.B) {
			f, _ := newFormatter(cfg)
			e := knownEntry()
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				buf = f.append(buf[:0], &e)
			}
		})
	}
}
