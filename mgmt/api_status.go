package mgmt

import (
	"net/http"
	"time"

	"github.com/sluicelb/sluice/l4"
	"github.com/sluicelb/sluice/maps"
)

// Status is GET /v1/status.
type Status struct {
	Version       string          `json:"version"`
	PID           int             `json:"pid,omitempty"` // changes when SIGUSR2 upgrades the daemon in place
	UptimeSeconds float64         `json:"uptime_seconds"`
	BPFFS         string          `json:"bpffs"`
	Interfaces    []l4.Attachment `json:"interfaces"`
}

// IfaceStats are the verdict counters of one interface.
type IfaceStats struct {
	Name     string                  `json:"name"`
	Ifindex  int                     `json:"ifindex"`
	Verdicts map[string]maps.Counter `json:"verdicts"`
}

// ListStats are the drops attributed to one list.
type ListStats struct {
	Name    string       `json:"name"`
	Kind    string       `json:"kind"`
	Entries int          `json:"entries"`
	Drops   maps.Counter `json:"drops"`
}

// Stats is GET /v1/stats.
type Stats struct {
	Interfaces []IfaceStats            `json:"interfaces"`
	Drops      map[string]maps.Counter `json:"drops"`
	Lists      []ListStats             `json:"lists"`
	L4         L4Stats                 `json:"l4"`
}

func (s *Server) getStatus() http.HandlerFunc {
	return handler(func(w http.ResponseWriter, r *http.Request) (any, error) { return s.status(), nil })
}

func (s *Server) getStats() http.HandlerFunc {
	return handler(func(w http.ResponseWriter, r *http.Request) (any, error) { return s.stats() })
}

// collectStats reads the datapath counters for the attached interfaces and the lists.
func collectStats(st maps.Stats, ifaces []l4.Attachment, acl *aclState) (Stats, error) {
	out := Stats{Interfaces: []IfaceStats{}, Drops: map[string]maps.Counter{}, Lists: []ListStats{}}
	for _, a := range ifaces {
		vs, err := st.Iface(a.Ifindex)
		if err != nil {
			return out, err
		}
		is := IfaceStats{Name: a.Iface, Ifindex: a.Ifindex, Verdicts: map[string]maps.Counter{}}
		for v, c := range vs {
			is.Verdicts[maps.Verdict(v).String()] = c
		}
		out.Interfaces = append(out.Interfaces, is)
	}
	drops, err := st.Drops()
	if err != nil {
		return out, err
	}
	for r, c := range drops {
		out.Drops[maps.DropReason(r).String()] = c
	}
	lists, err := st.Lists()
	if err != nil {
		return out, err
	}
	info := acl.info()
	acl.mu.Lock()
	for _, li := range info.Lists {
		if l := acl.lists[li.Name]; l != nil {
			out.Lists = append(out.Lists, ListStats{Name: li.Name, Kind: li.Kind, Entries: li.Entries, Drops: lists[l.ID]})
		}
	}
	acl.mu.Unlock()
	return out, nil
}

// uptime returns a function measuring the time since start.
func uptime(start time.Time) func() float64 {
	return func() float64 { return time.Since(start).Seconds() }
}
