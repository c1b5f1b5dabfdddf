package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/sluicelb/sluice/l4"
)

// Service is an L4 service as the daemon reports it.
type Service struct {
	l4.Service
	Version uint64 `json:"version"`
}

// BackendPatch changes one backend; nil fields stay as they are.
type BackendPatch struct {
	Weight *uint16          `json:"weight,omitempty"`
	State  *l4.BackendState `json:"state,omitempty"`
}

func servicePath(name string) string { return "/v1/services/" + url.PathEscape(name) }

// Services lists every L4 service.
func (c *Client) Services(ctx context.Context) ([]Service, error) {
	var r struct {
		Services []Service `json:"services"`
	}
	return r.Services, c.getJSON(ctx, "/v1/services", &r)
}

// GetService returns one service.
func (c *Client) GetService(ctx context.Context, name string) (Service, error) {
	var r Service
	return r, c.getJSON(ctx, servicePath(name), &r)
}

// SetService creates or replaces a service; ifMatch as for SyncList.
func (c *Client) SetService(ctx context.Context, svc l4.Service, ifMatch string) (Service, error) {
	var r Service
	_, err := c.sendJSON(ctx, http.MethodPut, servicePath(svc.Name), svc, &r, ifMatchHeader(ifMatch))
	return r, err
}

// PatchBackend changes the weight or the state of one backend.
func (c *Client) PatchBackend(ctx context.Context, name, addr string, p BackendPatch, ifMatch string) (Service, error) {
	var r Service
	_, err := c.sendJSON(ctx, http.MethodPatch, servicePath(name)+"/backends/"+url.PathEscape(addr), p, &r, ifMatchHeader(ifMatch))
	return r, err
}

// DeleteService removes a service.
func (c *Client) DeleteService(ctx context.Context, name, ifMatch string) error {
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: servicePath(name), Header: ifMatchHeader(ifMatch)}, nil)
	return err
}
