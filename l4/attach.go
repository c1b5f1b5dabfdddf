// Package l4 holds the L4 side of Sluice: attaching the XDP program to
// interfaces through pinned links, and the L4 service model.
package l4

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// XDPMode is how the program is attached to a NIC.
type XDPMode string

// The attach modes; auto tries native and falls back to generic.
const (
	XDPAuto    XDPMode = "auto"
	XDPNative  XDPMode = "native"
	XDPGeneric XDPMode = "generic"
)

// ParseXDPMode validates a mode name.
func ParseXDPMode(s string) (XDPMode, error) {
	switch m := XDPMode(s); m {
	case XDPAuto, XDPNative, XDPGeneric:
		return m, nil
	case "":
		return XDPAuto, nil
	}
	return "", fmt.Errorf("xdp mode %q: want auto, native or generic", s)
}

// Attachment describes the program attached to one interface.
type Attachment struct {
	Iface     string  `json:"name"`
	Ifindex   int     `json:"ifindex"`
	Mode      XDPMode `json:"xdp_mode"`
	ProgramID uint32  `json:"program_id"`
	LinkID    uint32  `json:"link_id"`
}

// maxIfindexSlots mirrors MAX_IFINDEX in bpf/include/consts.h.
const maxIfindexSlots = 4096

func linkDir(pinDir string) string { return filepath.Join(pinDir, "links") }

func linkPin(pinDir, iface string) string { return filepath.Join(linkDir(pinDir), iface) }

// attachMode reads from netlink how the kernel runs the program on iface.
func attachMode(iface string) XDPMode {
	l, err := netlink.LinkByName(iface)
	if err != nil || l.Attrs().Xdp == nil {
		return ""
	}
	switch l.Attrs().Xdp.AttachMode {
	case nl.XDP_ATTACHED_DRV:
		return XDPNative
	case nl.XDP_ATTACHED_SKB:
		return XDPGeneric
	}
	return ""
}

// Attach attaches prog to iface through a link pinned under pinDir. When a
// pinned link exists already (a restarted or upgraded daemon), the program in
// it is replaced atomically, so filtering never stops; the kernel keeps the
// program attached for as long as the pin exists, so a daemon crash does not
// stop it either.
func Attach(prog *ebpf.Program, pinDir, iface string, mode XDPMode, log *slog.Logger) (Attachment, error) {
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return Attachment{}, fmt.Errorf("attach xdp to %s: %w", iface, err)
	}
	att := Attachment{Iface: iface, Ifindex: ifc.Index}
	if err := os.MkdirAll(linkDir(pinDir), 0o700); err != nil {
		return att, fmt.Errorf("create link pin dir: %w", err)
	}
	if l, err := link.LoadPinnedLink(linkPin(pinDir, iface), nil); err == nil {
		defer l.Close()
		if err := l.Update(prog); err != nil {
			return att, fmt.Errorf("replace xdp program on %s: %w", iface, err)
		}
		att.Mode = attachMode(iface)
		return fillIDs(att, l, prog)
	} else if !errors.Is(err, os.ErrNotExist) {
		return att, fmt.Errorf("open pinned link of %s: %w", iface, err)
	}

	tries := []XDPMode{mode}
	if mode == XDPAuto || mode == "" {
		tries = []XDPMode{XDPNative, XDPGeneric}
	}
	var l link.Link
	for i, m := range tries {
		flags := link.XDPDriverMode
		if m == XDPGeneric {
			flags = link.XDPGenericMode
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: flags})
		if err == nil {
			att.Mode = m
			break
		}
		if i+1 < len(tries) {
			log.Warn("native xdp failed, falling back to generic", "iface", iface, "err", err)
		}
	}
	if err != nil {
		if errors.Is(err, os.ErrExist) || errors.Is(err, errBusy) {
			return att, fmt.Errorf("attach xdp to %s: another xdp program is attached (detach it first): %w", iface, err)
		}
		return att, fmt.Errorf("attach xdp to %s: %w", iface, err)
	}
	defer l.Close()
	if err := l.Pin(linkPin(pinDir, iface)); err != nil {
		return att, fmt.Errorf("pin xdp link of %s: %w", iface, err)
	}
	return fillIDs(att, l, prog)
}

func fillIDs(att Attachment, l link.Link, prog *ebpf.Program) (Attachment, error) {
	if info, err := l.Info(); err == nil {
		att.LinkID = uint32(info.ID)
	}
	if info, err := prog.Info(); err == nil {
		if id, ok := info.ID(); ok {
			att.ProgramID = uint32(id)
		}
	}
	return att, nil
}

// CheckIfindexSlots returns an error when two interfaces share a counter slot.
func CheckIfindexSlots(ifaces []string) error {
	seen := map[int]string{}
	for _, name := range ifaces {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			return fmt.Errorf("interface %s: %w", name, err)
		}
		slot := ifc.Index & (maxIfindexSlots - 1)
		if other, ok := seen[slot]; ok {
			return fmt.Errorf("interfaces %s and %s share counter slot %d (ifindex mod %d)", other, name, slot, maxIfindexSlots)
		}
		seen[slot] = name
	}
	return nil
}

// Attached lists the interfaces with a pinned Sluice link under pinDir.
func Attached(pinDir string) ([]Attachment, error) {
	ents, err := os.ReadDir(linkDir(pinDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pinned links: %w", err)
	}
	var out []Attachment
	for _, e := range ents {
		l, err := link.LoadPinnedLink(filepath.Join(linkDir(pinDir), e.Name()), nil)
		if err != nil {
			continue
		}
		att := Attachment{Iface: e.Name()}
		if ifc, err := net.InterfaceByName(e.Name()); err == nil {
			att.Ifindex = ifc.Index
		}
		att.Mode = attachMode(e.Name())
		if info, err := l.Info(); err == nil {
			att.LinkID = uint32(info.ID)
			att.ProgramID = uint32(info.Program)
		}
		l.Close()
		out = append(out, att)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Iface < out[j].Iface })
	return out, nil
}
