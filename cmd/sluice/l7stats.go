package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sluicelb/sluice/l7/stats"
	"github.com/sluicelb/sluice/mgmt/client"
)

// withL7Stats adds --l7 to the stats command: the L7 proxy's counters
// instead of the datapath's.
func withL7Stats(cmd *cli.Command) *cli.Command {
	cmd.Usage += "; with --l7, requests per virtual server, location and upstream server"
	cmd.Flags = append(cmd.Flags, &cli.BoolFlag{Name: "l7", Usage: "the L7 proxy's counters"})
	datapath := cmd.Action
	cmd.Action = func(c *cli.Context) error {
		if !c.Bool("l7") {
			return datapath(c)
		}
		return l7StatsAction(c)
	}
	return cmd
}

var l7StatsAction = apiAction(func(c *cli.Context, ctx context.Context, api *client.Client) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	st, err := api.L7Stats(ctx)
	if err != nil {
		return err
	}
	return render(c, st, func(w io.Writer) { l7StatsTable(w, st) })
})

// l7Row is one row of the L7 statistics: the name columns, then the counters.
func l7Row(w io.Writer, a, b string, t stats.Totals, latency *stats.Histogram) {
	r := t.Responses
	row(w, a, b, human(t.Requests), human(r.Status2xx), human(r.Status3xx), human(r.Status4xx), human(r.Status5xx),
		humanBytes(t.BytesIn), humanBytes(t.BytesOut), t.Active, p99(latency))
}

// p99 renders the 99th percentile of a latency histogram, "-" without one.
func p99(h *stats.Histogram) string {
	if h == nil || h.Count == 0 {
		return "-"
	}
	d := time.Duration(h.P99 * float64(time.Second))
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func l7StatsTable(w io.Writer, st client.L7Stats) {
	row(w, "CONNECTIONS", "ACTIVE", "ACCEPTED")
	row(w, "clients", human(uint64(max(st.Connections.Active, 0))), human(st.Connections.Accepted))
	fmt.Fprintln(w)
	row(w, "VSERVER", "LOCATION", "REQUESTS", "2XX", "3XX", "4XX", "5XX", "IN", "OUT", "ACTIVE", "P99")
	for _, vs := range sortedKeys(st.VServers, nil) {
		t := st.VServers[vs]
		l7Row(w, vs, "*", t, t.Latency)
		locs := st.Locations[vs]
		for _, l := range sortedKeys(locs, nil) {
			l7Row(w, "", l, locs[l], locs[l].Latency)
		}
	}
	fmt.Fprintln(w)
	row(w, "UPSTREAM", "SERVER", "REQUESTS", "2XX", "3XX", "4XX", "5XX", "IN", "OUT", "ACTIVE", "P99")
	for _, u := range sortedKeys(st.Upstreams, nil) {
		servers := st.Upstreams[u].Servers
		for _, s := range sortedKeys(servers, nil) {
			l7Row(w, u, s, servers[s], servers[s].UpstreamLatency)
		}
	}
}
