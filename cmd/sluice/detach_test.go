package main

import (
	"errors"
	"reflect"
	"testing"

	"github.com/sluicelb/sluice/mgmt"
)

type detachCall struct {
	bpffs  string
	ifaces []string
	all    bool
}

func captureDetach(t *testing.T, err error) *[]detachCall {
	t.Helper()
	var calls []detachCall
	old := detachXDP
	detachXDP = func(bpffs string, ifaces []string, all bool) error {
		calls = append(calls, detachCall{bpffs, ifaces, all})
		return err
	}
	t.Cleanup(func() { detachXDP = old })
	return &calls
}

func TestDetach(t *testing.T) {
	calls := captureDetach(t, nil)
	wantStdout(t, sluice("", "detach", "--iface", "eth0", "--iface", "eth1"), "")
	wantStdout(t, sluice("", "detach", "--all", "--bpffs", "/sys/fs/bpf/other"), "")
	want := []detachCall{
		{mgmt.DefaultConfig().BPFFS, []string{"eth0", "eth1"}, false},
		{"/sys/fs/bpf/other", nil, true},
	}
	if !reflect.DeepEqual(*calls, want) {
		t.Errorf("detach calls %+v, want %+v", *calls, want)
	}
}

func TestDetachErrorIsReported(t *testing.T) {
	captureDetach(t, errors.New("detach eth0: not attached"))
	r := sluice("", "detach", "--iface", "eth0")
	if r.code != 1 || r.stderr != "sluice: detach eth0: not attached\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}
