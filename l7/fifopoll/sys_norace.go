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

//
// They are recv(2) and send(2), not read(2) and write(2): those go through
// the file layer (the descriptor's position lock, the permission hooks, an
// indirect call to the socket's read_iter) before they reach the socket,
// which on the proxy's benchmark cost about 5% of its CPU. MSG_NOSIGNAL
// spares the runtime a SIGPIPE for every write to a closed connection.

// ReadFD reads a nonblocking socket: recv(2).
func ReadFD(fd int, b []byte) (int, error) { return rawIO(unix.SYS_RECVFROM, fd, b, 0) }

func sysWrite(fd int, b []byte) (int, error) { return rawIO(unix.SYS_SENDTO, fd, b, unix.MSG_NOSIGNAL) }

// rawIO is recvfrom(2) or sendto(2), by trap, of b on fd, with no address.
func rawIO(trap uintptr, fd int, b []byte, flags int) (int, error) {
	n, _, e := unix.RawSyscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), uintptr(flags), 0, 0)
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
