package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicelb/sluice/test/lab"
)

type status struct {
	Interfaces []struct {
		Name      string `json:"name"`
		XDPMode   string `json:"xdp_mode"`
		ProgramID uint32 `json:"program_id"`
		LinkID    uint32 `json:"link_id"`
	} `json:"interfaces"`
}

func getStatus(t *testing.T, l *lab.Lab) status {
	t.Helper()
	var st status
	if err := json.Unmarshal([]byte(l.MustCLI("status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestGenericModeFiltersAndDetachRemovesEverything(t *testing.T) {
	l := lab.New(t)
	l.StartBackend()
	d := l.StartDaemon("--xdp-mode", "generic")
	st := getStatus(t, l)
	if len(st.Interfaces) != 1 || st.Interfaces[0].XDPMode != "generic" {
		t.Fatalf("status = %+v, want one interface in generic mode", st)
	}
	l.MustCLI("acl", "add", "blocked", lab.ClientAddr)
	if l.Reaches("tcp", lab.ClientAddr, lab.BackendAddr) {
		t.Fatal("a denied client got a reply in generic mode")
	}
	d.Stop()
	// Filtering goes on without the daemon ...
	if l.Reaches("tcp", lab.ClientAddr, lab.BackendAddr) {
		t.Fatal("a denied client got a reply after the daemon stopped")
	}
	// ... until detach, which removes the program and every pin.
	b := lab.Build(t)
	// Detach needs only the pins, not the interface's namespace.
	if out, err := exec.Command(b.Sluice, "detach", "--iface", l.LBIf, "--bpffs", l.BPFFS).CombinedOutput(); err != nil {
		t.Fatalf("detach --iface: %v\n%s", err, out)
	}
	if link := l.Exec(l.LB, "ip", "link", "show", l.LBIf); strings.Contains(link, "xdp") {
		t.Fatalf("xdp still attached after detach:\n%s", link)
	}
	if !lab.Eventually(2*time.Second, func() bool { return l.Reaches("tcp", lab.ClientAddr, lab.BackendAddr) }) {
		t.Fatal("the client got no reply after detach")
	}
	if out, err := exec.Command(b.Sluice, "detach", "--all", "--bpffs", l.BPFFS).CombinedOutput(); err != nil {
		t.Fatalf("detach --all: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(l.BPFFS, "maps")); !os.IsNotExist(err) {
		t.Fatalf("pins left after detach --all: %v", err)
	}
}

func TestRestartSwapsProgramInTheSameLink(t *testing.T) {
	l := lab.New(t)
	l.StartBackend()
	d := l.StartDaemon()
	before := getStatus(t, l)
	d.Kill()
	l.StartDaemon()
	after := getStatus(t, l)
	if len(before.Interfaces) != 1 || len(after.Interfaces) != 1 {
		t.Fatalf("status before %+v after %+v", before, after)
	}
	b, a := before.Interfaces[0], after.Interfaces[0]
	if a.LinkID != b.LinkID || a.ProgramID == b.ProgramID || a.XDPMode != "native" {
		t.Fatalf("restart: link %d → %d, program %d → %d, mode %s; want the same link with a new program, native",
			b.LinkID, a.LinkID, b.ProgramID, a.ProgramID, a.XDPMode)
	}
}
