package client

import (
	"context"
	"io"
	"net/http"
)

// Status returns the daemon's version, uptime and attached interfaces.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.getJSON(ctx, "/v1/status", &s)
}

// Stats returns the datapath counters.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	return s, c.getJSON(ctx, "/v1/stats", &s)
}

// Metrics copies the Prometheus text exposition of the daemon to w.
func (c *Client) Metrics(ctx context.Context, w io.Writer) error {
	_, err := c.Do(ctx, Request{Method: http.MethodGet, Path: "/metrics",
		Header: http.Header{"Accept": {"text/plain"}}}, w)
	return err
}
