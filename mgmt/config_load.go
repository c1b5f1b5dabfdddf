package mgmt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicelb/sluice/l4"
	"github.com/sluicelb/sluice/maps"
)

// DefaultConfigPath is read when --config is not given and the file exists.
const DefaultConfigPath = "/etc/sluice/sluice.yaml"

// LoadConfig reads a YAML config file over DefaultConfig. Unknown keys are
// errors that name the key and its line.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Validate checks every value and returns the first problem.
func (c Config) Validate() error {
	if _, err := l4.ParseXDPMode(c.XDPMode); err != nil {
		return err
	}
	if c.Policy != "" && c.Policy != KindDeny && c.Policy != KindAllow {
		return fmt.Errorf("policy %q: want deny or allow", c.Policy)
	}
	for _, p := range c.Protect {
		if _, err := ParseEntry(p); err != nil {
			return fmt.Errorf("protect %q: %w", p, err)
		}
	}
	if c.BPFFS == "" || c.StateDir == "" || c.API.Socket == "" {
		return errors.New("bpffs, state_dir and api.socket must not be empty")
	}
	if c.API.Listen != "" && c.API.TokenFile == "" {
		return errors.New("api.listen needs api.token_file: the TCP API always requires a token")
	}
	if c.API.MaxBodyBytes <= 0 {
		return fmt.Errorf("api.max_body_bytes %d: must be positive", c.API.MaxBodyBytes)
	}
	if c.ACLMaxEntries == 0 {
		return errors.New("acl_max_entries must be positive")
	}
	if c.L4.FlowTableSize == 0 {
		return errors.New("l4.flow_table_size must be positive")
	}
	if n := c.L4.FlowCacheSlots; n == 0 || n&(n-1) != 0 || n > 1<<20 {
		return fmt.Errorf("l4.flow_cache_slots %d: want a power of two up to 1048576", n)
	}
	if c.L4.UDPTimeoutSeconds < 0 {
		return errors.New("l4.udp_timeout_seconds must not be negative")
	}
	if c.L7.ReadHeaderTimeoutSeconds < 0 || c.L7.IdleTimeoutSeconds < 0 || c.L7.MaxHeaderBytes < 0 {
		return errors.New("l7 timeouts and max_header_bytes must not be negative")
	}
	if _, err := c.L4.settings(); err != nil {
		return err
	}
	if _, err := c.L4.nextHopMAC(); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	return nil
}

// nextHopMAC parses l4.next_hop_mac: nil when unset.
func (c L4Config) nextHopMAC() (net.HardwareAddr, error) {
	if c.NextHopMAC == "" {
		return nil, nil
	}
	mac, err := net.ParseMAC(c.NextHopMAC)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("l4.next_hop_mac %q: want a 6-byte MAC such as 02:00:5e:10:00:01", c.NextHopMAC)
	}
	return mac, nil
}

// settings parses the L4 settings.
func (c L4Config) settings() (maps.LBSettings, error) {
	out := maps.LBSettings{UDPTimeout: time.Duration(c.UDPTimeoutSeconds) * time.Second}
	for _, e := range []struct {
		name, val string
		v6        bool
		dst       *netip.Prefix
	}{{"l4.encap_source4", c.EncapSource4, false, &out.EncapSrc4}, {"l4.encap_source6", c.EncapSource6, true, &out.EncapSrc6}} {
		if e.val == "" {
			continue
		}
		p, err := ParseEntry(e.val)
		if err != nil || p.Addr().Is6() != e.v6 {
			return out, fmt.Errorf("%s %q: want an IPv%s address or prefix", e.name, e.val, map[bool]string{false: "4", true: "6"}[e.v6])
		}
		*e.dst = p
	}
	return out, nil
}
