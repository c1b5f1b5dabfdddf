package client

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestStatusOverUnixSocket(t *testing.T) {
	var auth string
	path := serveUnix(t, func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		if r.Method != http.MethodGet || r.URL.Path != "/v1/status" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusTeapot)
			return
		}
		io.WriteString(w, `{"version":"0.1.0","uptime_seconds":12.5,"bpffs":"/sys/fs/bpf/sluice",
			"interfaces":[{"name":"eth0","ifindex":2,"xdp_mode":"native","program_id":123,"link_id":45}]}`)
	})
	c, err := New("unix://"+path, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	want := Interface{Name: "eth0", Ifindex: 2, XDPMode: "native", ProgramID: 123, LinkID: 45}
	if st.Version != "0.1.0" || st.UptimeSeconds != 12.5 || st.BPFFS != "/sys/fs/bpf/sluice" ||
		len(st.Interfaces) != 1 || st.Interfaces[0] != want {
		t.Errorf("Status = %+v", st)
	}
	if auth != "" {
		t.Errorf("Authorization %q sent without a token", auth)
	}
}

func TestBearerTokenIsSent(t *testing.T) {
	c := serve(t, "s3cret", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":"unauthorized","message":"missing or wrong bearer token"}}`)
			return
		}
		io.WriteString(w, `{"interfaces":[],"drops":{"acl_deny":{"packets":5,"bytes":300}},"lists":[]}`)
	})
	st, err := c.Stats(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Drops["acl_deny"] != (Counter{Packets: 5, Bytes: 300}) {
		t.Errorf("Stats = %+v", st)
	}
}

func TestMetricsCopiesTheExposition(t *testing.T) {
	const text = "# TYPE sluice_drops_total counter\nsluice_drops_total{reason=\"acl_deny\"} 7\n"
	c := serve(t, "", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, text)
	})
	var b strings.Builder
	if err := c.Metrics(testContext(t), &b); err != nil {
		t.Fatal(err)
	}
	if b.String() != text {
		t.Errorf("Metrics wrote %q, want %q", b.String(), text)
	}
}
