package client

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
)

func TestInvalidEntriesErrorRendersBadLines(t *testing.T) {
	c := serve(t, "", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":{"code":"invalid_entries","message":"2 invalid lines","details":[
			{"line":3,"text":"10.0.0.300","error":"ParseAddr(\"10.0.0.300\"): IPv4 field has value >255"},
			{"line":812345,"text":"10.0.0.1/8","error":"host bits set"}]}}`)
	})
	_, err := c.SyncList(testContext(t), "bad", "", nil, "")
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("SyncList error = %v (%T), want *APIError", err, err)
	}
	if ae.Status != 400 || ae.Code != "invalid_entries" || len(ae.Details) != 2 {
		t.Errorf("APIError = %+v", ae)
	}
	want := `400 invalid_entries: 2 invalid lines
  line 3: "10.0.0.300": ParseAddr("10.0.0.300"): IPv4 field has value >255
  line 812345: "10.0.0.1/8": host bits set`
	if ae.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", ae.Error(), want)
	}
	if bl := ae.BadLines(); len(bl) != 2 || bl[1] != (BadLine{Line: 812345, Text: "10.0.0.1/8", Error: "host bits set"}) {
		t.Errorf("BadLines() = %+v", bl)
	}
}

func TestErrorWithoutEnvelopeKeepsStatusAndBody(t *testing.T) {
	c := serve(t, "", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream is down", http.StatusBadGateway)
	})
	_, err := c.ACL(testContext(t))
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("ACL error = %v, want *APIError", err)
	}
	if got, want := ae.Error(), "502 bad_gateway: upstream is down"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestNonLineDetailsAreRenderedRaw(t *testing.T) {
	e := &APIError{Status: 409, Code: "conflict", Message: "list busy", Details: []json.RawMessage{json.RawMessage(`{"holder":"sync"}`)}}
	if got, want := e.Error(), "409 conflict: list busy\n  {\"holder\":\"sync\"}"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
