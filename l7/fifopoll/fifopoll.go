// Package fifopoll waits for sockets with an epoll instance of its own and
// wakes their goroutines in the order the kernel saw them become ready.
//
// Go's poller wakes the goroutines of one batch of ready sockets in reverse
// order (runtime/netpoll_epoll.go pushes each onto a list used as a stack),
// so under load the connection that became ready first is served last.
// With the proxy's core saturated that spreads the latency of requests
// that arrive together: tracing the proxy's syscalls showed the time from
// writing a request upstream to reading its answer spread from 0.1 to
// 8 ms, where nginx, which serves its epoll batch in order, spread it from
// 0.5 to 4 ms. A Go runtime patched to keep the order closed that gap,
// which is what this package does without one.
//
// One goroutine per Poller waits for the Poller's epoll descriptor through
// Go's own poller (an epoll descriptor is readable while it has events),
// takes the batch in the kernel's order and wakes each waiting goroutine by
// a channel, arranged so that the scheduler runs them in that order.
//
// A Conn is a TCP connection taken out of Go's poller (Adopt); it is a
// net.Conn and a syscall.Conn whose RawConn waits through the Poller.
package fifopoll

import (
	"errors"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// batch is how many events one epoll_wait takes; a fuller batch is
// followed by another at once.
const batch = 256

// Poller is one epoll instance and the goroutine that waits for it.
type Poller struct {
	epfd int
	file *os.File // epfd, registered with Go's poller
	rc   syscall.RawConn

	mu     sync.Mutex
	slots  []*Conn  // by slot; nil when free
	gens   []uint32 // each slot's generation: an event for an older one is stale
	free   []int32
	closed bool

	closeOnce sync.Once

	events []unix.EpollEvent
	woken  []*side
	done   chan struct{}
}

// New starts a Poller.
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile registers it with Go's poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	p := &Poller{epfd: epfd, file: os.NewFile(uintptr(epfd), "fifopoll"),
		events: make([]unix.EpollEvent, batch), done: make(chan struct{})}
	if p.rc, err = p.file.SyscallConn(); err != nil {
		p.file.Close()
		return nil, err
	}
	go p.run()
	return p, nil
}

// Close stops the Poller. Conns still open see their waits fail; closing
// them is still their owners' job.
func (p *Poller) Close() error {
	p.stop()
	var err error
	p.closeOnce.Do(func() {
		err = p.file.Close() // ends run's wait
		<-p.done
	})
	return err
}

// stop marks p closed and ends the waits of its connections: they fail
// from then on.
func (p *Poller) stop() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	open := make([]*Conn, 0, len(p.slots))
	for _, c := range p.slots {
		if c != nil {
			open = append(open, c)
		}
	}
	p.mu.Unlock()
	for _, c := range open {
		c.stopped.Store(true)
		c.rd.wake()
		c.wr.wake()
	}
}

// run waits for the epoll descriptor through Go's poller and dispatches
// each batch of events, until the Poller is closed.
func (p *Poller) run() {
	defer close(p.done)
	dispatch := func(uintptr) bool {
		for {
			n, err := sysEpollWait(p.epfd, p.events)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				// Not expected while p is open (epfd stays valid until
				// run returns): no connection would ever wake again, so
				// they fail now instead.
				p.stop()
				return true
			}
			p.collect(p.events[:n])
			p.wake()
			if n < len(p.events) {
				return false // drained: wait for the next event
			}
		}
	}
	for {
		if err := p.rc.Read(dispatch); err != nil {
			return // closed
		}
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return
		}
	}
}

// collect puts the sides the events make ready in p.woken, in the order
// of the events.
func (p *Poller) collect(evs []unix.EpollEvent) {
	p.woken = p.woken[:0]
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range evs {
		ev := &evs[i]
		slot, gen := ev.Fd, uint32(ev.Pad)
		if int(slot) >= len(p.slots) || p.gens[slot] != gen || p.slots[slot] == nil {
			continue // the connection was closed since
		}
		// A side that holds its token already is skipped: its next wait
		// returns at once and retries the call, which sees this event's
		// readiness. Most events also say writable, for a write side
		// nobody waits on; a skipped side costs no channel send and no
		// place in the wake order.
		c := p.slots[slot]
		if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			c.rd.hup.Store(true)
		}
		if ev.Events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			c.wr.hup.Store(true)
		}
		if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && len(c.rd.ready) == 0 {
			p.woken = append(p.woken, &c.rd)
		}
		if ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 && len(c.wr.ready) == 0 {
			p.woken = append(p.woken, &c.wr)
		}
	}
}

// wake wakes the sides in p.woken so that their goroutines run in that
// order. A goroutine woken by a channel is put in the scheduler's next
// slot and pushes the one there to the end of the run queue: waking all
// but the first in order and the first last leaves them queued in order.
func (p *Poller) wake() {
	if len(p.woken) == 0 {
		return
	}
	for _, s := range p.woken[1:] {
		s.wake()
	}
	p.woken[0].wake()
	clear(p.woken)
}

// register adds c's socket to the epoll instance, edge-triggered for
// reading and writing, as Go's poller does.
func (p *Poller) register(c *Conn) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("fifopoll: poller closed")
	}
	var slot int32
	if n := len(p.free); n > 0 {
		slot, p.free = p.free[n-1], p.free[:n-1]
	} else {
		slot = int32(len(p.slots))
		p.slots, p.gens = append(p.slots, nil), append(p.gens, 0)
	}
	p.gens[slot]++
	p.slots[slot] = c
	c.slot, c.gen = slot, p.gens[slot]
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: slot, Pad: int32(c.gen)}
	err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev)
	if err == unix.EEXIST { // a listener given to Accept before
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev)
	}
	if err != nil {
		p.unregister(c, false)
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// unregister removes c from the epoll instance (del: explicitly; c's
// descriptor may be a duplicate of one still open) and frees its slot.
func (p *Poller) unregister(c *Conn, del bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if del && !p.closed { // once closed, p.epfd may be another descriptor's number
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	}
	if p.slots[c.slot] == c {
		p.slots[c.slot] = nil
		p.gens[c.slot]++
		p.free = append(p.free, c.slot)
	}
}

// Registered reports how many connections the Poller holds.
func (p *Poller) Registered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.slots) - len(p.free)
}
