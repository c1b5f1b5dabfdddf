package upstream

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const testCert = `-----BEGIN CERTIFICATE-----
MIIBAzCBqqADAgECAgEBMAoGCCqGSM49BAMCMAAwHhcNMjYwMTAxMDAwMDAwWhcN
-----END CERTIFICATE-----
`

const testKey = `-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIBa8
-----END EC PRIVATE KEY-----
`

func TestValidateNamesTheBadField(t *testing.T) {
	ok := func() Config { return Config{Name: "app", Servers: servers(2)} }
	for name, tc := range map[string]struct {
		edit func(c *Config)
		want string // in the error
	}{
		"no name":            {func(c *Config) { c.Name = "" }, "name"},
		"bad name":           {func(c *Config) { c.Name = "a b" }, "name"},
		"unknown balancer":   {func(c *Config) { c.Balancer = "ip_hash" }, "balancer: \"ip_hash\""},
		"hash key elsewhere": {func(c *Config) { c.HashKey = "uri" }, "hash_key: \"uri\": only for balancer hash"},
		"bad hash key":       {func(c *Config) { c.Balancer, c.HashKey = "hash", "host" }, "hash_key: \"host\""},
		"bad header name":    {func(c *Config) { c.Balancer, c.HashKey = "hash", "header:X User" }, "hash_key"},
		"empty cookie name":  {func(c *Config) { c.Balancer, c.HashKey = "hash", "cookie:" }, "hash_key"},
		"no port":            {func(c *Config) { c.Servers[1].Addr = "10.0.0.2" }, "servers[1] (10.0.0.2).addr"},
		"port 0":             {func(c *Config) { c.Servers[1].Addr = "10.0.0.2:0" }, "servers[1] (10.0.0.2:0).addr"},
		"port too big":       {func(c *Config) { c.Servers[1].Addr = "10.0.0.2:70000" }, ".addr"},
		"bad host":           {func(c *Config) { c.Servers[1].Addr = "a b:80" }, ".addr"},
		"bad ipv6":           {func(c *Config) { c.Servers[1].Addr = "[zz::1]:80" }, ".addr"},
		"no addr":            {func(c *Config) { c.Servers[1].Addr = "" }, "servers[1].addr: required"},
		"weight too big":     {func(c *Config) { c.Servers[0].Weight = 1000001 }, "servers[0] (10.0.0.1:80).weight: 1000001: want 1..1000000"},
		"weight negative":    {func(c *Config) { c.Servers[0].Weight = -1 }, ".weight"},
		"max_fails -2":       {func(c *Config) { c.Servers[0].MaxFails = -2 }, ".max_fails"},
		"fail_timeout < 0":   {func(c *Config) { c.Servers[0].FailTimeout = -1 }, ".fail_timeout"},
		"negative id":        {func(c *Config) { c.Servers[0].ID = -1 }, ".id"},
		"duplicate addr":     {func(c *Config) { c.Servers[1].Addr = "10.0.0.1:80" }, "servers[1] (10.0.0.1:80).addr: \"10.0.0.1:80\": also servers[0]"},
		"duplicate id":       {func(c *Config) { c.Servers[0].ID, c.Servers[1].ID = 3, 3 }, "servers[1] (10.0.0.2:80).id: 3: also servers[0]"},
		"keepalive":          {func(c *Config) { c.KeepAlive = -1 }, "keepalive"},
		"connect_timeout":    {func(c *Config) { c.ConnectTimeout = -1 }, "connect_timeout"},
		"read_timeout":       {func(c *Config) { c.ReadTimeout = -1 }, "read_timeout"},
		"write_timeout":      {func(c *Config) { c.WriteTimeout = -1 }, "write_timeout"},
		"tls mode":           {func(c *Config) { c.TLS = &TLSConfig{Mode: "ssl"} }, "tls.mode"},
		"tls ca":             {func(c *Config) { c.TLS = &TLSConfig{CA: "junk"} }, "tls.ca"},
		"tls cert sans key":  {func(c *Config) { c.TLS = &TLSConfig{Cert: testCert} }, "tls.key: required with tls.cert"},
		"tls key not pem":    {func(c *Config) { c.TLS = &TLSConfig{Cert: testCert, Key: "k"} }, "tls.key"},
		"enc cert for tls":   {func(c *Config) { c.TLS = &TLSConfig{EncCert: testCert, EncKey: testKey} }, "tls.enc_cert: only for mode tlcp"},
		"tlcp half":          {func(c *Config) { c.TLS = &TLSConfig{Mode: "tlcp", Cert: testCert, Key: testKey} }, "tls.enc_cert"},
		"tls server_name":    {func(c *Config) { c.TLS = &TLSConfig{ServerName: "a/b"} }, "tls.server_name"},
	} {
		c := ok()
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want an ErrInvalid containing %q", name, err, tc.want)
		}
		if _, err := NewPool(c); err == nil {
			t.Errorf("%s: NewPool accepted it", name)
		}
	}
}

func TestValidateAcceptsWhatOperatorsWrite(t *testing.T) {
	for name, c := range map[string]Config{
		"minimal":      {Name: "app", Servers: servers(1)},
		"no servers":   {Name: "app"},
		"host names":   {Name: "app", Servers: []ServerConfig{{Addr: "app-1.internal:8080"}, {Addr: "[2001:db8::1]:443"}, {Addr: "localhost:80"}}},
		"hash cookie":  {Name: "app", Balancer: "hash", HashKey: "cookie:sid", Servers: servers(2)},
		"hash header":  {Name: "app", Balancer: "hash", HashKey: "header:X-User-Id", Servers: servers(2)},
		"all backup":   {Name: "app", Servers: []ServerConfig{{Addr: "10.0.0.1:80", Backup: true}}},
		"max_fails -1": {Name: "app", Servers: []ServerConfig{{Addr: "10.0.0.1:80", MaxFails: -1}}},
		"tls":          {Name: "app", Servers: servers(1), TLS: &TLSConfig{ServerName: "app.example", CA: testCert, Cert: testCert, Key: testKey}},
		"tlcp":         {Name: "app", Servers: servers(1), TLS: &TLSConfig{Mode: "tlcp", Cert: testCert, Key: testKey, EncCert: testCert, EncKey: testKey}},
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNormalizeFillsDefaultsAndValidateChangesNothing(t *testing.T) {
	c := Config{Name: "app", Balancer: "hash", Servers: []ServerConfig{{Addr: "10.0.0.1:80"}}, TLS: &TLSConfig{}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.HashKey != "" || c.Servers[0].Weight != 0 || c.TLS.Mode != "" {
		t.Errorf("Validate changed the config: %+v", c)
	}
	c.Normalize()
	want := Config{Name: "app", Balancer: "hash", HashKey: "client_ip", KeepAlive: 32,
		ConnectTimeout: Duration(5 * time.Second), ReadTimeout: Duration(time.Minute), WriteTimeout: Duration(time.Minute),
		Servers: []ServerConfig{{Addr: "10.0.0.1:80", Weight: 1, MaxFails: 1, FailTimeout: Duration(10 * time.Second)}},
		TLS:     &TLSConfig{Mode: "tls"}}
	if got, _ := json.Marshal(c); string(got) != mustJSON(t, want) {
		t.Errorf("normalized:\n%s\nwant\n%s", got, mustJSON(t, want))
	}
	if p := testPool(t, Config{Name: "app"}, nil); p.Config().Balancer != BalancerRoundRobin {
		t.Errorf("default balancer %q", p.Config().Balancer)
	}
}

func TestNewPoolDoesNotWriteIntoTheCallersConfig(t *testing.T) {
	c := Config{Name: "app", Servers: servers(2), TLS: &TLSConfig{}}
	p := testPool(t, c, nil)
	if c.Servers[0].ID != 0 || c.Servers[0].Weight != 0 || c.TLS.Mode != "" {
		t.Errorf("NewPool wrote into the caller's config: %+v %+v", c.Servers[0], c.TLS)
	}
	got := p.Config()
	got.Servers[0].Weight = 99
	if p.Config().Servers[0].Weight == 99 {
		t.Errorf("Config() shares the pool's servers")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfigJSONIsWhatOperatorsWrite(t *testing.T) {
	in := `{"name":"app","balancer":"hash","hash_key":"cookie:sid","keepalive":16,
		"connect_timeout":"3s","read_timeout":30,"write_timeout":"250ms",
		"servers":[{"addr":"10.0.0.1:8080","weight":5,"max_fails":3,"fail_timeout":"30s"},
		           {"id":4,"addr":"10.0.0.2:8080","backup":true,"down":true}],
		"tls":{"mode":"tlcp","server_name":"app","skip_verify":true}}`
	var c Config
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	if c.ConnectTimeout != Duration(3*time.Second) || c.ReadTimeout != Duration(30*time.Second) || c.WriteTimeout != Duration(250*time.Millisecond) {
		t.Errorf("timeouts %v %v %v", c.ConnectTimeout, c.ReadTimeout, c.WriteTimeout)
	}
	if s := c.Servers[0]; s.Weight != 5 || s.MaxFails != 3 || s.FailTimeout != Duration(30*time.Second) {
		t.Errorf("server 0: %+v", s)
	}
	if s := c.Servers[1]; s.ID != 4 || !s.Backup || !s.Down {
		t.Errorf("server 1: %+v", s)
	}
	if c.TLS == nil || c.TLS.Mode != "tlcp" || !c.TLS.SkipVerify {
		t.Errorf("tls: %+v", c.TLS)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	out := mustJSON(t, Config{Name: "a", ReadTimeout: Duration(90 * time.Second), Servers: []ServerConfig{{Addr: "h:1"}}})
	if want := `{"name":"a","servers":[{"addr":"h:1"}],"read_timeout":"1m30s"}`; out != want {
		t.Errorf("marshal: %s, want %s", out, want)
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"ten seconds"`), &d); err == nil {
		t.Errorf("a bad duration parsed")
	}
}
