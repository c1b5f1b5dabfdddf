package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicelb/sluice/l7"
	"github.com/sluicelb/sluice/l7/accesslog"
	"github.com/sluicelb/sluice/l7/upstream"
	"github.com/sluicelb/sluice/mgmt"
	"github.com/sluicelb/sluice/mgmt/client"
)

// jsonFields describes the JSON object of struct type t: each key with its
// options and the kind of its value, the fields of embedded structs
// included (an outer field hides an inner one, as in encoding/json).
func jsonFields(t reflect.Type) map[string]string {
	out := map[string]string{}
	var embedded []reflect.Type
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() && !f.Anonymous {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			embedded = append(embedded, f.Type)
			continue
		}
		if name == "" {
			name = f.Name
		}
		kind := f.Type.Kind()
		if kind == reflect.Pointer {
			kind = f.Type.Elem().Kind()
		}
		out[name] = opts + " " + kind.String()
	}
	for _, e := range embedded {
		for k, v := range jsonFields(e) {
			if _, hidden := out[k]; !hidden {
				out[k] = v
			}
		}
	}
	return out
}

// TestClientMirrorsTheDaemonsL7Types keeps the client's mirrors of the L7
// configuration and of the API's views in step with the daemon's types.
func TestClientMirrorsTheDaemonsL7Types(t *testing.T) {
	for _, tc := range []struct {
		name           string
		client, server any
	}{
		{"VServer", client.VServer{}, l7.VServer{}},
		{"Location", client.Location{}, l7.Location{}},
		{"Cert", client.Cert{}, l7.Cert{}},
		{"Upstream", client.Upstream{}, upstream.Config{}},
		{"Server", client.Server{}, upstream.ServerConfig{}},
		{"UpstreamTLS", client.UpstreamTLS{}, upstream.TLSConfig{}},
		{"AccessLog", client.AccessLog{}, accesslog.Config{}},
		{"AccessLogStats", client.AccessLogStats{}, accesslog.Stats{}},
		{"VServerView", client.VServerView{}, mgmt.VServerView{}},
		{"UpstreamView", client.UpstreamView{}, mgmt.UpstreamView{}},
		{"ServerView", client.ServerView{}, mgmt.ServerView{}},
		{"CertView", client.CertView{}, mgmt.CertView{}},
	} {
		c, s := jsonFields(reflect.TypeOf(tc.client)), jsonFields(reflect.TypeOf(tc.server))
		// The client leaves an unset server id out; the daemon reads that as 0.
		if tc.name == "Server" || tc.name == "ServerView" {
			c["id"], s["id"] = "int", "int"
		}
		if !reflect.DeepEqual(c, s) {
			t.Errorf("client.%s has the JSON fields\n%v\nthe daemon's has\n%v", tc.name, c, s)
		}
	}
}

func TestClientDurationIsTheDaemons(t *testing.T) {
	for _, d := range []time.Duration{0, 1500 * time.Millisecond, 90 * time.Second} {
		cb, err := json.Marshal(client.Duration(d))
		if err != nil {
			t.Fatal(err)
		}
		sb, err := json.Marshal(upstream.Duration(d))
		if err != nil {
			t.Fatal(err)
		}
		var back upstream.Duration
		if err := json.Unmarshal(cb, &back); err != nil || time.Duration(back) != d {
			t.Errorf("the daemon reads the client's %s as %v (%v)", cb, time.Duration(back), err)
		}
		var cback client.Duration
		if err := json.Unmarshal(sb, &cback); err != nil || time.Duration(cback) != d {
			t.Errorf("the client reads the daemon's %s as %v (%v)", sb, time.Duration(cback), err)
		}
	}
}
