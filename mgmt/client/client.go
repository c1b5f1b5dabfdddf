// Package client is a Go client of the Sluice management API, used by the
// CLI and the end-to-end tests.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to one daemon.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// New returns a client for api, which is unix:///path/to/socket or
// http(s)://host:port. The token is sent as a bearer token when not empty.
func New(api, token string) (*Client, error) {
	u, err := url.Parse(api)
	if err != nil {
		return nil, fmt.Errorf("api address %q: %w", api, err)
	}
	c := &Client{token: token, hc: &http.Client{}}
	switch u.Scheme {
	case "unix":
		path := u.Path
		c.base = "http://sluice"
		c.hc.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
	case "http", "https":
		c.base = strings.TrimSuffix(api, "/")
	default:
		return nil, fmt.Errorf("api address %q: want unix:///path or http://host:port", api)
	}
	return c, nil
}

// APIError is an error answer of the API.
type APIError struct {
	Status  int               `json:"-"`
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details"`
}

// Error renders the status, code, message and the details, one per line.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", e.Status, e.Code, e.Message)
	for _, d := range e.Details {
		var bl struct {
			Line  int    `json:"line"`
			Text  string `json:"text"`
			Error string `json:"error"`
		}
		if json.Unmarshal(d, &bl) == nil && bl.Line > 0 {
			fmt.Fprintf(&b, "\n  line %d: %q: %s", bl.Line, bl.Text, bl.Error)
		} else {
			fmt.Fprintf(&b, "\n  %s", d)
		}
	}
	return b.String()
}

// Request is one call: method, path, optional body and headers.
type Request struct {
	Method, Path string
	Body         io.Reader
	ContentType  string
	Header       http.Header
}

// Do sends req and decodes a JSON answer into out (when not nil). An error
// answer becomes *APIError.
func (c *Client) Do(ctx context.Context, req Request, out any) (http.Header, error) {
	r, err := http.NewRequestWithContext(ctx, req.Method, c.base+req.Path, req.Body)
	if err != nil {
		return nil, err
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	if req.ContentType != "" {
		r.Header.Set("Content-Type", req.ContentType)
	}
	if c.token != "" {
		r.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(r)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		var env struct {
			Error APIError `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &env) != nil || env.Error.Code == "" {
			env.Error = APIError{Code: http.StatusText(resp.StatusCode), Message: strings.TrimSpace(string(b))}
		}
		env.Error.Status = resp.StatusCode
		return resp.Header, &env.Error
	}
	if w, ok := out.(io.Writer); ok {
		_, err = io.Copy(w, resp.Body)
		return resp.Header, err
	}
	if out != nil {
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
		return nil, err
	}
	return c.Do(ctx, Request{Method: method, Path: path, Body: bytes.NewReader(b), ContentType: "application/json", Header: header}, out)
}

// DefaultTimeout bounds calls that are not list uploads.
const DefaultTimeout = 30 * time.Second
