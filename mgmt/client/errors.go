package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// APIError is an error answer of the API: the HTTP status and the envelope
// {"error":{"code":…,"message":…,"details":[…]}}.
type APIError struct {
	Status  int               `json:"-"`
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details,omitempty"`
}

// BadLine is the detail of an invalid_entries error: one rejected line.
type BadLine struct {
	Line  int    `json:"line"`
	Text  string `json:"text"`
	Error string `json:"error"`
}

// Error renders the status, code and message, then each detail on its own
// line: `line 3: "10.0.0.300": …` for a bad line, the raw JSON otherwise.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", e.Status, e.Code, e.Message)
	for _, d := range e.Details {
		var bl BadLine
		if json.Unmarshal(d, &bl) == nil && bl.Line > 0 {
			fmt.Fprintf(&b, "\n  line %d: %q: %s", bl.Line, bl.Text, bl.Error)
		} else {
			fmt.Fprintf(&b, "\n  %s", d)
		}
	}
	return b.String()
}

// BadLines returns the details that are rejected lines, in order.
func (e *APIError) BadLines() []BadLine {
	var out []BadLine
	for _, d := range e.Details {
		var bl BadLine
		if json.Unmarshal(d, &bl) == nil && bl.Line > 0 {
			out = append(out, bl)
		}
	}
	return out
}

// decodeError reads an error answer. A body that is not the envelope (a
// proxy's page, say) becomes an APIError whose code is derived from the status.
func decodeError(resp *http.Response) *APIError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var env struct {
		Error *APIError `json:"error"`
	}
	if json.Unmarshal(b, &env) != nil || env.Error == nil || env.Error.Code == "" {
		msg := strings.TrimSpace(string(b))
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		env.Error = &APIError{Code: strings.ToLower(strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "_")), Message: msg}
	}
	env.Error.Status = resp.StatusCode
	return env.Error
}

var _ error = (*APIError)(nil)
