package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
)

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.getJSON(ctx, "/v1/status", &s)
}

// Stats returns the datapath counters.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	return s, c.getJSON(ctx, "/v1/stats", &s)
}

// ACL returns the policy, the protect prefixes and the lists.
func (c *Client) ACL(ctx context.Context) (ACL, error) {
	var a ACL
	return a, c.getJSON(ctx, "/v1/acl", &a)
}

// SetPolicy sets the ACL mode (deny or allow).
func (c *Client) SetPolicy(ctx context.Context, mode string) error {
	_, err := c.sendJSON(ctx, http.MethodPut, "/v1/acl/policy", map[string]string{"mode": mode}, nil, nil)
	return err
}

// SetProtect replaces the protect prefixes.
func (c *Client) SetProtect(ctx context.Context, prefixes []string) error {
	if prefixes == nil {
		prefixes = []string{}
	}
	_, err := c.sendJSON(ctx, http.MethodPut, "/v1/acl/protect", map[string][]string{"prefixes": prefixes}, nil, nil)
	return err
}

func listPath(name, kind string) string {
	p := "/v1/acl/lists/" + url.PathEscape(name)
	if kind != "" {
		p += "?kind=" + url.QueryEscape(kind)
	}
	return p
}

func ifMatchHeader(v string) http.Header {
	if v == "" {
		return nil
	}
	return http.Header{"If-Match": {`"` + v + `"`}}
}

// SyncList replaces list name with the text/plain body (one entry per line),
// streamed as it is read.
func (c *Client) SyncList(ctx context.Context, name, kind string, body io.Reader, ifMatch string) (SyncResult, error) {
	var r SyncResult
	_, err := c.Do(ctx, Request{Method: http.MethodPut, Path: listPath(name, kind), Body: body,
		ContentType: "text/plain", Header: ifMatchHeader(ifMatch)}, &r)
	return r, err
}

// PatchList adds and removes entries of list name.
func (c *Client) PatchList(ctx context.Context, name string, add, remove []string, ifMatch string) (SyncResult, error) {
	var r SyncResult
	body := map[string][]string{"add": add, "remove": remove}
	_, err := c.sendJSON(ctx, http.MethodPatch, listPath(name, ""), body, &r, ifMatchHeader(ifMatch))
	return r, err
}

// GetList returns list name with its entries.
func (c *Client) GetList(ctx context.Context, name string) (List, error) {
	var l List
	return l, c.getJSON(ctx, listPath(name, ""), &l)
}

// DeleteList removes list name.
func (c *Client) DeleteList(ctx context.Context, name, ifMatch string) error {
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: listPath(name, ""), Header: ifMatchHeader(ifMatch)}, nil)
	return err
}

// Check tells what the datapath does with packets from ip, and why.
func (c *Client) Check(ctx context.Context, ip string) (Check, error) {
	var r Check
	return r, c.getJSON(ctx, "/v1/acl/check?ip="+url.QueryEscape(ip), &r)
}

// Metrics writes the Prometheus text exposition to w.
func (c *Client) Metrics(ctx context.Context, w io.Writer) error {
	_, err := c.Do(ctx, Request{Method: http.MethodGet, Path: "/metrics"}, w)
	return err
}
