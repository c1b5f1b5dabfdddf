package upstream

import (
	"sync"
	"sync/atomic"
	"time"
)

// Server is one server of a pool at run time: a read-only snapshot of its
// ServerConfig and its live state (requests in flight, passive health).
// The live state is shared, through a pointer, by every Server value that
// Update makes for the same server, so a request that picked s before an
// update releases and reports into the state the new s uses. Its methods
// are safe for concurrent use.
type Server struct {
	cfg ServerConfig
	st  *state
}

// state is the live state of a server, shared across pool updates. All of
// it is read with atomics; mu serializes the writers of the failure window.
type state struct {
	now       func() time.Time // the pool's clock
	active    atomic.Int64
	downUntil atomic.Int64 // unix nanoseconds; the server is out before it
	fails     atomic.Int32 // failures in the window that began at windowStart
	tripped   atomic.Bool  // taken out, and no success since: one failure takes it out again

	mu          sync.Mutex
	windowStart int64 // unix nanoseconds of the first failure counted
}

func newState(now func() time.Time) *state { return &state{now: now} }

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.cfg.Addr }

// ID returns the server's id in its pool.
func (s *Server) ID() int { return s.cfg.ID }

// Config returns the server's configuration as the pool normalized it.
func (s *Server) Config() ServerConfig { return s.cfg }

// Acquire records that a request starts using s; least_conn and random
// count these. Every Acquire needs one Release.
func (s *Server) Acquire() { s.st.active.Add(1) }

// Release records that a request stopped using s.
func (s *Server) Release() { s.st.active.Add(-1) }

// Active returns the number of requests using s (Acquire minus Release).
func (s *Server) Active() int64 { return s.st.active.Load() }

// Fails returns the failures counted in the current fail_timeout window.
func (s *Server) Fails() int { return int(s.st.fails.Load()) }

// Report feeds passive health with the outcome of one attempt: ok false for
// a failure (connect error, upstream error, timeout), true for a success.
// After MaxFails failures within FailTimeout the server is unavailable for
// FailTimeout; once that ends it is tried again, and like nginx one more
// failure before any success takes it out again at once. A success clears
// the count. With MaxFails -1 failures are not counted.
func (s *Server) Report(ok bool) {
	st := s.st
	if ok {
		// Fast path for the common case: nothing to clear, no lock.
		if st.fails.Load() == 0 && !st.tripped.Load() {
			return
		}
		st.mu.Lock()
		st.fails.Store(0)
		st.tripped.Store(false)
		st.windowStart = 0
		st.mu.Unlock()
		return
	}
	if s.cfg.MaxFails <= 0 {
		return
	}
	window := int64(s.cfg.FailTimeout)
	now := st.now().UnixNano()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.tripped.Load() {
		if now >= st.downUntil.Load() {
			st.downUntil.Store(now + window)
		}
		return
	}
	if st.fails.Load() == 0 || now-st.windowStart > window {
		st.windowStart = now
		st.fails.Store(0)
	}
	if n := st.fails.Add(1); int(n) >= s.cfg.MaxFails {
		st.downUntil.Store(now + window)
		st.tripped.Store(true)
		st.fails.Store(0)
		st.windowStart = 0
	}
}

// Available reports whether s may take requests at now: it is not marked
// down and passive health has not taken it out.
func (s *Server) Available(now time.Time) bool {
	return !s.cfg.Down && s.healthy(now.UnixNano())
}

// UnavailableUntil returns when passive health lets s take requests again;
// a time not after now (the zero time if it never failed) means it may.
func (s *Server) UnavailableUntil() time.Time {
	if u := s.st.downUntil.Load(); u != 0 {
		return time.Unix(0, u)
	}
	return time.Time{}
}

func (s *Server) healthy(now int64) bool { return now >= s.st.downUntil.Load() }

// same reports whether a and b are the same server (the same live state),
// possibly from different updates of the pool.
func same(a, b *Server) bool { return a.st == b.st }
