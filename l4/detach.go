package l4

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// ErrNotAttached is returned by Detach for a named interface without a pinned link.
var ErrNotAttached = errors.New("not attached")

var errBusy = unix.EBUSY

// Detach removes the Sluice program from the named interfaces by unpinning
// their links, or, with all, from every interface, and then also removes the
// pinned maps and the pin directory. Detaching everything when nothing is
// attached is not an error.
func Detach(bpffs string, ifaces []string, all bool) error {
	if all {
		ents, err := os.ReadDir(linkDir(bpffs))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("list pinned links: %w", err)
		}
		for _, e := range ents {
			ifaces = append(ifaces, e.Name())
		}
	}
	for _, iface := range ifaces {
		if err := detachOne(bpffs, iface); err != nil {
			if all && errors.Is(err, ErrNotAttached) {
				continue
			}
			return err
		}
	}
	if all {
		if err := os.RemoveAll(bpffs); err != nil {
			return fmt.Errorf("remove pins under %s: %w", bpffs, err)
		}
	}
	return nil
}

func detachOne(bpffs, iface string) error {
	path := linkPin(bpffs, iface)
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("detach %s: %w", iface, ErrNotAttached)
	}
	if err != nil {
		return fmt.Errorf("open pinned link of %s: %w", iface, err)
	}
	defer l.Close()
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin link of %s: %w", iface, err)
	}
	// The link is released with the last handle (ours, closed above); an
	// explicit detach makes it immediate even if another handle is open.
	if err := l.Detach(); err != nil && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("detach xdp from %s: %w", iface, err)
	}
	return nil
}
