package mgmt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigUnknownKeyNamesKeyAndLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(path, []byte("interfaces: [eth0]\nxdp_mode: native\napi:\n  socket: /tmp/s.sock\n  lisen: 127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), "line 5") || !strings.Contains(err.Error(), "lisen") {
		t.Fatalf("err = %v, want one naming lisen on line 5", err)
	}
}

func TestConfigLoadsAndValidates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(path, []byte("interfaces: [eth0, eth1]\npolicy: allow\nprotect: [192.0.2.0/24]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil || len(cfg.Interfaces) != 2 || cfg.Policy != "allow" || cfg.API.Socket != DefaultConfig().API.Socket {
		t.Fatalf("cfg = %+v, %v", cfg, err)
	}
	if err := os.WriteFile(path, []byte("l4: {flow_table_size: 4096, flow_table_size6: 512}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := LoadConfig(path); err != nil || cfg.L4.FlowTableSize != 4096 || cfg.L4.FlowTableSize6 != 512 {
		t.Fatalf("l4 = %+v, %v; want tables of 4096 and 512 flows", cfg.L4, err)
	}
	if cfg.L4.FlowCacheSlots != 1<<14 {
		t.Errorf("flow caches of %d slots by default, want 16384", cfg.L4.FlowCacheSlots)
	}
	for _, bad := range []string{"xdp_mode: turbo\n", "policy: maybe\n", "protect: [10.0.0.1/8]\n", "api: {listen: ':1'}\n",
		"l4: {flow_cache_slots: 1000}\n", "l4: {flow_cache_slots: 0}\n"} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadConfig(path); err == nil {
			t.Errorf("config %q was accepted", bad)
		}
	}
}
