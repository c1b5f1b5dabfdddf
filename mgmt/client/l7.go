package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// Every method here answers a daemon without the L7 proxy with an *APIError
// of status 404, like a missing object.

func vserverPath(name string) string  { return "/v1/vservers/" + url.PathEscape(name) }
func upstreamPath(name string) string { return "/v1/upstreams/" + url.PathEscape(name) }
func certPath(name string) string     { return "/v1/certs/" + url.PathEscape(name) }

func serverPath(upstream string, id int) string {
	return upstreamPath(upstream) + "/servers/" + strconv.Itoa(id)
}

// VServers lists every virtual server, by name.
func (c *Client) VServers(ctx context.Context) ([]VServerView, error) {
	var r struct {
		VServers []VServerView `json:"vservers"`
	}
	return r.VServers, c.getJSON(ctx, "/v1/vservers", &r)
}

// GetVServer returns one virtual server.
func (c *Client) GetVServer(ctx context.Context, name string) (VServerView, error) {
	var r VServerView
	return r, c.getJSON(ctx, vserverPath(name), &r)
}

// SetVServer creates or replaces a virtual server, its locations included;
// ifMatch as for SyncList. An invalid one is an *APIError with status 400.
func (c *Client) SetVServer(ctx context.Context, v VServer, ifMatch string) (VServerView, error) {
	if v.Locations == nil {
		v.Locations = []Location{}
	}
	var r VServerView
	_, err := c.sendJSON(ctx, http.MethodPut, vserverPath(v.Name), v, &r, ifMatchHeader(ifMatch))
	return r, err
}

// DeleteVServer removes a virtual server; ifMatch as for SyncList.
func (c *Client) DeleteVServer(ctx context.Context, name, ifMatch string) error {
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: vserverPath(name), Header: ifMatchHeader(ifMatch)}, nil)
	return err
}

// SetLocation adds or replaces location l of virtual server vs and returns
// the virtual server.
func (c *Client) SetLocation(ctx context.Context, vs string, l Location) (VServerView, error) {
	var r VServerView
	_, err := c.sendJSON(ctx, http.MethodPut, vserverPath(vs)+"/locations/"+url.PathEscape(l.Name), l, &r, nil)
	return r, err
}

// DeleteLocation removes location loc of virtual server vs and returns the
// virtual server.
func (c *Client) DeleteLocation(ctx context.Context, vs, loc string) (VServerView, error) {
	var r VServerView
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: vserverPath(vs) + "/locations/" + url.PathEscape(loc)}, &r)
	return r, err
}

// Upstreams lists every upstream with its servers' live state, by name.
func (c *Client) Upstreams(ctx context.Context) ([]UpstreamView, error) {
	var r struct {
		Upstreams []UpstreamView `json:"upstreams"`
	}
	return r.Upstreams, c.getJSON(ctx, "/v1/upstreams", &r)
}

// GetUpstream returns one upstream with its servers' live state.
func (c *Client) GetUpstream(ctx context.Context, name string) (UpstreamView, error) {
	var r UpstreamView
	return r, c.getJSON(ctx, upstreamPath(name), &r)
}

// SetUpstream creates or replaces an upstream; servers without an ID get
// one. ifMatch as for SyncList.
func (c *Client) SetUpstream(ctx context.Context, u Upstream, ifMatch string) (UpstreamView, error) {
	if u.Servers == nil {
		u.Servers = []Server{}
	}
	var r UpstreamView
	_, err := c.sendJSON(ctx, http.MethodPut, upstreamPath(u.Name), u, &r, ifMatchHeader(ifMatch))
	return r, err
}

// DeleteUpstream removes an upstream; one that a location still sends to is
// an *APIError with status 409. ifMatch as for SyncList.
func (c *Client) DeleteUpstream(ctx context.Context, name, ifMatch string) error {
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: upstreamPath(name), Header: ifMatchHeader(ifMatch)}, nil)
	return err
}

// ResetUpstreamStats zeroes the counters of an upstream's servers.
func (c *Client) ResetUpstreamStats(ctx context.Context, name string) error {
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: upstreamPath(name) + "/stats"}, nil)
	return err
}

// Servers lists the servers of an upstream with their live state.
func (c *Client) Servers(ctx context.Context, upstream string) ([]ServerView, error) {
	var r []ServerView
	return r, c.getJSON(ctx, upstreamPath(upstream)+"/servers", &r)
}

// AddServer adds a server to an upstream and returns it with the ID the
// daemon assigned (when s.ID is 0). A taken ID is an *APIError with status 409.
func (c *Client) AddServer(ctx context.Context, upstream string, s Server) (ServerView, error) {
	var r ServerView
	_, err := c.sendJSON(ctx, http.MethodPost, upstreamPath(upstream)+"/servers", s, &r, nil)
	return r, err
}

// GetServer returns server id of an upstream.
func (c *Client) GetServer(ctx context.Context, upstream string, id int) (ServerView, error) {
	var r ServerView
	return r, c.getJSON(ctx, serverPath(upstream, id), &r)
}

// PatchServer changes the fields of server id that p sets.
func (c *Client) PatchServer(ctx context.Context, upstream string, id int, p ServerPatch) (ServerView, error) {
	var r ServerView
	_, err := c.sendJSON(ctx, http.MethodPatch, serverPath(upstream, id), p, &r, nil)
	return r, err
}

// DeleteServer removes server id from an upstream.
func (c *Client) DeleteServer(ctx context.Context, upstream string, id int) error {
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: serverPath(upstream, id)}, nil)
	return err
}

// Certs lists every certificate, by name, without keys.
func (c *Client) Certs(ctx context.Context) ([]CertView, error) {
	var r struct {
		Certs []CertView `json:"certs"`
	}
	return r.Certs, c.getJSON(ctx, "/v1/certs", &r)
}

// GetCert returns one certificate, without its keys.
func (c *Client) GetCert(ctx context.Context, name string) (CertView, error) {
	var r CertView
	return r, c.getJSON(ctx, certPath(name), &r)
}

// SetCert creates or replaces a certificate; one whose PEM does not parse
// is an *APIError with status 400. ifMatch as for SyncList.
func (c *Client) SetCert(ctx context.Context, cert Cert, ifMatch string) (CertView, error) {
	var r CertView
	_, err := c.sendJSON(ctx, http.MethodPut, certPath(cert.Name), cert, &r, ifMatchHeader(ifMatch))
	return r, err
}

// DeleteCert removes a certificate; ifMatch as for SyncList.
func (c *Client) DeleteCert(ctx context.Context, name, ifMatch string) error {
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: certPath(name), Header: ifMatchHeader(ifMatch)}, nil)
	return err
}

// AccessLog returns the access log's configuration and counters.
func (c *Client) AccessLog(ctx context.Context) (AccessLogStatus, error) {
	var r AccessLogStatus
	return r, c.getJSON(ctx, "/v1/accesslog", &r)
}

// SetAccessLog replaces the access log's configuration and returns the one
// now in force.
func (c *Client) SetAccessLog(ctx context.Context, a AccessLog) (AccessLog, error) {
	var r AccessLogStatus
	_, err := c.sendJSON(ctx, http.MethodPut, "/v1/accesslog", a, &r, nil)
	return r.Config, err
}

// L7Stats returns the proxy's counters.
func (c *Client) L7Stats(ctx context.Context) (L7Stats, error) {
	var r L7Stats
	return r, c.getJSON(ctx, "/v1/stats/l7", &r)
}
