package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// ACL returns the policy, the protect prefixes and the lists.
func (c *Client) ACL(ctx context.Context) (ACL, error) {
	var a ACL
	return a, c.getJSON(ctx, "/v1/acl", &a)
}

// SetPolicy sets the ACL mode, deny or allow, and returns the mode now in force.
func (c *Client) SetPolicy(ctx context.Context, mode string) (Policy, error) {
	var p Policy
	_, err := c.sendJSON(ctx, http.MethodPut, "/v1/acl/policy", Policy{Mode: mode}, &p, nil)
	return p, err
}

// SetProtect replaces the protect prefixes (nil clears them) and returns the
// prefixes now in force.
func (c *Client) SetProtect(ctx context.Context, prefixes []string) (Protect, error) {
	if prefixes == nil {
		prefixes = []string{}
	}
	var p Protect
	_, err := c.sendJSON(ctx, http.MethodPut, "/v1/acl/protect", Protect{Prefixes: prefixes}, &p, nil)
	return p, err
}

// SyncList replaces the whole list name with body, text/plain with one IP or
// CIDR per line, streamed as it is read (never held in memory). kind (deny or
// allow) may be empty: deny for a new list, unchanged for an existing one.
// ifMatch, when not empty, is the version the list must be at (or "*").
// Bad lines come back as an *APIError with code invalid_entries.
func (c *Client) SyncList(ctx context.Context, name, kind string, body io.Reader, ifMatch string) (SyncResult, error) {
	var r SyncResult
	_, err := c.Do(ctx, Request{Method: http.MethodPut, Path: listPath(name, kind), Body: body,
		ContentType: "text/plain; charset=utf-8", Header: ifMatchHeader(ifMatch)}, &r)
	return r, err
}

// PatchList adds and removes entries of list name, creating it (with kind,
// deny when empty) if it is missing. Removing an absent entry is not an error.
func (c *Client) PatchList(ctx context.Context, name, kind string, add, remove []string, ifMatch string) (SyncResult, error) {
	if add == nil {
		add = []string{}
	}
	if remove == nil {
		remove = []string{}
	}
	var r SyncResult
	body := struct {
		Add    []string `json:"add"`
		Remove []string `json:"remove"`
	}{add, remove}
	_, err := c.sendJSON(ctx, http.MethodPatch, listPath(name, kind), body, &r, ifMatchHeader(ifMatch))
	return r, err
}

// GetList returns list name with its entries; a missing list is an
// *APIError with status 404.
func (c *Client) GetList(ctx context.Context, name string) (List, error) {
	var l List
	return l, c.getJSON(ctx, listPath(name, ""), &l)
}

// WriteList streams the entries of list name to w as text/plain, one prefix
// per line, and returns the list's version (from the ETag).
func (c *Client) WriteList(ctx context.Context, name string, w io.Writer) (string, error) {
	h, err := c.Do(ctx, Request{Method: http.MethodGet, Path: listPath(name, ""),
		Header: http.Header{"Accept": {"text/plain"}}}, w)
	if err != nil {
		return "", err
	}
	return strings.Trim(h.Get("ETag"), `"`), nil
}

// DeleteList removes list name; ifMatch as for SyncList.
func (c *Client) DeleteList(ctx context.Context, name, ifMatch string) error {
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: listPath(name, ""), Header: ifMatchHeader(ifMatch)}, nil)
	return err
}

// Check tells what the datapath does with packets from ip, and why.
func (c *Client) Check(ctx context.Context, ip string) (Check, error) {
	var r Check
	return r, c.getJSON(ctx, "/v1/acl/check?ip="+url.QueryEscape(ip), &r)
}

func listPath(name, kind string) string {
	p := "/v1/acl/lists/" + url.PathEscape(name)
	if kind != "" {
		p += "?kind=" + url.QueryEscape(kind)
	}
	return p
}

// ifMatchHeader quotes a bare version; "*" and quoted versions pass unchanged.
func ifMatchHeader(v string) http.Header {
	switch {
	case v == "":
		return nil
	case v == "*" || strings.HasPrefix(v, `"`) || strings.HasPrefix(v, `W/"`):
		return http.Header{"If-Match": {v}}
	}
	return http.Header{"If-Match": {`"` + v + `"`}}
}
