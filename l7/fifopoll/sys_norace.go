//go:build !race

package fifopoll

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reads, writes and the dispatcher's epoll_wait(0) on these nonblocking
// descriptors return at once, so they skip the runtime's syscall
// bookkeeping. With it, a loopback write, which runs the receiver's network
// stack, can outlast a sysmon tick; sysmon then hands the P to another
// thread, which on a proxy given one CPU costs context switches and sends
// the writer to the back of the global run queue. On the L7 benchmark's
// proxy the raw calls halved the context switches.

// ReadFD is read(2) for a nonblocking descriptor.
func ReadFD(fd int, b []byte) (int, error) { return rawIO(unix.SYS_READ, fd, b) }

func sysWrite(fd int, b []byte) (int, error) { return rawIO(unix.SYS_WRITE, fd, b) }

// rawIO is read(2) or write(2), by trap, of b on fd.
func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	n, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func sysEpollWait(epfd int, evs []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(evs))), uintptr(len(evs)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
