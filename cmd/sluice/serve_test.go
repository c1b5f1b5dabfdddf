package main

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sluicelb/sluice/mgmt"
)

// captureServe replaces the daemon with a stub that records its configuration
// and returns err, and points the default config path at path.
func captureServe(t *testing.T, defaultPath string, err error) *mgmt.Config {
	t.Helper()
	got := new(mgmt.Config)
	oldRun, oldPath := runDaemon, defaultConfigPath
	runDaemon = func(ctx context.Context, cfg mgmt.Config) error {
		if ctx.Err() != nil {
			t.Error("the daemon got a context that is already cancelled")
		}
		*got = cfg
		return err
	}
	defaultConfigPath = defaultPath
	t.Cleanup(func() { runDaemon, defaultConfigPath = oldRun, oldPath })
	return got
}

func TestServeDefaults(t *testing.T) {
	got := captureServe(t, filepath.Join(t.TempDir(), "absent.yaml"), nil)
	wantOK(t, sluice("", "serve"))
	if want := mgmt.DefaultConfig(); !reflect.DeepEqual(*got, want) {
		t.Errorf("serve without file or flags ran with\n%+v\nwant the defaults\n%+v", *got, want)
	}
}

func TestServeFlagsOverrideTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.yaml")
	writeFile(t, path, `interfaces: [eth0, eth1]
xdp_mode: native
bpffs: /sys/fs/bpf/from-file
state_dir: /var/lib/from-file
log_level: warn
api:
  socket: /run/from-file.sock
  max_body_bytes: 1000
`)
	got := captureServe(t, filepath.Join(dir, "absent.yaml"), nil)
	wantOK(t, sluice("", "serve", "--config", path, "--iface", "veth0", "--iface", "veth1", "--xdp-mode", "generic",
		"--state-dir", dir, "--reset-state", "--api-listen", "127.0.0.1:9000", "--api-token-file", "/etc/sluice/token",
		"--acl-max-entries", "1024", "--policy", "allow", "--protect", "192.0.2.0/24"))
	want := mgmt.DefaultConfig()
	want.Interfaces = []string{"veth0", "veth1"}
	want.XDPMode = "generic"
	want.BPFFS = "/sys/fs/bpf/from-file"
	want.StateDir = dir
	want.ResetState = true
	want.LogLevel = "warn"
	want.Policy = "allow"
	want.Protect = []string{"192.0.2.0/24"}
	want.ACLMaxEntries = 1024
	want.API.Socket = "/run/from-file.sock"
	want.API.Listen = "127.0.0.1:9000"
	want.API.TokenFile = "/etc/sluice/token"
	want.API.MaxBodyBytes = 1000
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("serve ran with\n%+v\nwant\n%+v", *got, want)
	}
}

func TestServeReadsTheDefaultConfigFileWhenPresent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, path, "xdp_mode: generic\n")
	got := captureServe(t, path, nil)
	wantOK(t, sluice("", "serve", "--max-body", "4096", "--socket", "/tmp/s.sock", "--bpffs", "/sys/fs/bpf/x", "--log-level", "debug",
		"--next-hop-mac", "02:00:5e:10:00:01"))
	if got.XDPMode != "generic" || got.API.MaxBodyBytes != 4096 || got.API.Socket != "/tmp/s.sock" ||
		got.BPFFS != "/sys/fs/bpf/x" || got.LogLevel != "debug" || got.L4.NextHopMAC != "02:00:5e:10:00:01" {
		t.Errorf("serve ran with %+v", *got)
	}
}

func TestServeRejectsBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "xdp_mode: native\nbogus_key: 1\n")
	got := captureServe(t, filepath.Join(dir, "absent.yaml"), nil)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--config", bad}, "bogus_key"},
		{[]string{"serve", "--config", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{[]string{"serve", "--xdp-mode", "turbo"}, "turbo"},
		{[]string{"serve", "--api-listen", "127.0.0.1:9000"}, "token"},
		{[]string{"serve", "--next-hop-mac", "02:00:5e:10:00"}, "l4.next_hop_mac"},
		{[]string{"serve", "--next-hop-mac", "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"}, "6-byte"},
	} {
		r := sluice("", tc.args...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "sluice: ") || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and an error naming %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	if got.XDPMode != "" {
		t.Errorf("the daemon was started with a bad configuration: %+v", *got)
	}
}

func TestServeDaemonErrorIsReported(t *testing.T) {
	captureServe(t, filepath.Join(t.TempDir(), "absent.yaml"), errors.New("attach xdp to eth9: no such device"))
	r := sluice("", "serve", "--iface", "eth9")
	if r.code != 1 || r.stderr != "sluice: attach xdp to eth9: no such device\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}
