package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve starts an httptest server over TCP and returns a client of it.
func serve(t *testing.T, token string, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serveUnix starts an httptest server on a unix socket and returns its path.
func serveUnix(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return path
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNewRejectsBadAddresses(t *testing.T) {
	for _, api := range []string{"ftp://host", "unix://", "http://", "/run/sluice.sock", "::"} {
		if _, err := New(api, ""); err == nil {
			t.Errorf("New(%q) = nil error, want an error", api)
		}
	}
	for _, api := range []string{"unix:///run/sluice/sluice.sock", "http://127.0.0.1:8080", "https://lb1:9443/"} {
		if _, err := New(api, ""); err != nil {
			t.Errorf("New(%q): %v", api, err)
		}
	}
}

func TestUnreachableDaemonNamesTheAddress(t *testing.T) {
	api := "unix://" + filepath.Join(t.TempDir(), "missing.sock")
	c, err := New(api, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Status(testContext(t))
	if err == nil || !strings.Contains(err.Error(), api) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Status error = %v, want one naming %s and the missing socket", err, api)
	}
	var ae *APIError
	if errors.As(err, &ae) {
		t.Errorf("an unreachable daemon is not an API error: %v", ae)
	}
}
