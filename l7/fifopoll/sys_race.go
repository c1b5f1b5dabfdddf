//go:build race

package fifopoll

import "golang.org/x/sys/unix"

// Under the race detector the wrapped calls are kept: they tell it that a
// write happens before the read that sees its bytes.

// ReadFD is read(2) for a nonblocking descriptor.
func ReadFD(fd int, b []byte) (int, error)   { return unix.Read(fd, b) }
func sysWrite(fd int, b []byte) (int, error) { return unix.Write(fd, b) }
func sysEpollWait(epfd int, evs []unix.EpollEvent) (int, error) {
	return unix.EpollWait(epfd, evs, 0)
}
