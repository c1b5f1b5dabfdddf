package main

import (
	"reflect"
	"strings"
	"testing"

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

// TestClientMirrorsTheDaemonsL7Types keeps the client's mirrors of the API's
// views in step with the daemon's.
func TestClientMirrorsTheDaemonsL7Types(t *testing.T) {
	for _, tc := range []struct {
		name           string
		client, server any
	}{
		{"VServerView", client.VServerView{}, mgmt.VServerView{}},
		{"UpstreamView", client.UpstreamView{}, mgmt.UpstreamView{}},
		{"ServerView", client.ServerView{}, mgmt.ServerView{}},
		{"CertView", client.CertView{}, mgmt.CertView{}},
	} {
		c, s := jsonFields(reflect.TypeOf(tc.client)), jsonFields(reflect.TypeOf(tc.server))
		if !reflect.DeepEqual(c, s) {
			t.Errorf("client.%s has the JSON fields\n%v\nthe daemon's has\n%v", tc.name, c, s)
		}
	}
}
