// Package client is a Go client of the Sluice management API, used by the
// CLI and the end-to-end tests.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds the calls that are not list uploads; callers apply
// it through their context.
const DefaultTimeout = 30 * time.Second

// Client talks to one daemon. It is safe for concurrent use.
type Client struct {
	api   string
	base  string
	token string
	hc    *http.Client
}

// New returns a client for api, which is unix:///path/to/socket or
// http(s)://host:port. The token, when not empty, is sent as a bearer token.
// An address of another form is an error.
func New(api, token string) (*Client, error) {
	u, err := url.Parse(api)
	if err != nil {
		return nil, fmt.Errorf("api address %q: %w", api, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	c := &Client{api: api, token: token, hc: &http.Client{Transport: tr}}
	switch u.Scheme {
	case "unix":
		path := u.Opaque
		if path == "" {
			path = u.Host + u.Path
		}
		if path == "" {
			return nil, fmt.Errorf("api address %q: want unix:///path/to/socket", api)
		}
		c.base = "http://sluice"
		tr.Proxy = nil
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("api address %q: no host", api)
		}
		c.base = strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/")
	default:
		return nil, fmt.Errorf("api address %q: want unix:///path or http(s)://host:port", api)
	}
	return c, nil
}

// Request is one call: method, path (with query), optional body and headers.
type Request struct {
	Method, Path string
	Body         io.Reader
	ContentType  string
	Header       http.Header
}

// Do sends req and decodes a JSON answer into out when out is not nil; when
// out is an io.Writer the answer's body is copied there instead. An error
// answer comes back as *APIError; a daemon that cannot be reached is an error
// that names the address.
func (c *Client) Do(ctx context.Context, req Request, out any) (http.Header, error) {
	r, err := http.NewRequestWithContext(ctx, req.Method, c.base+req.Path, req.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.Path, err)
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	if req.ContentType != "" {
		r.Header.Set("Content-Type", req.ContentType)
	}
	if r.Header.Get("Accept") == "" {
		r.Header.Set("Accept", "application/json")
	}
	if c.token != "" {
		r.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(r)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s at %s: %w", req.Method, req.Path, c.api, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return resp.Header, decodeError(resp)
	}
	switch o := out.(type) {
	case nil:
		return resp.Header, nil
	case io.Writer:
		if _, err := io.Copy(o, resp.Body); err != nil {
			return resp.Header, fmt.Errorf("read answer of %s %s: %w", req.Method, req.Path, err)
		}
	default:
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.Header, fmt.Errorf("decode answer of %s %s: %w", req.Method, req.Path, err)
		}
	}
	return resp.Header, nil
}

func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	_, err := c.Do(ctx, Request{Method: http.MethodGet, Path: path}, out)
	return err
}

func (c *Client) sendJSON(ctx context.Context, method, path string, in, out any, header http.Header) (http.Header, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", method, path, err)
	}
	return c.Do(ctx, Request{Method: method, Path: path, Body: bytes.NewReader(b),
		ContentType: "application/json", Header: header}, out)
}
