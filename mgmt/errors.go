package mgmt

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// apiError is an error answer in the envelope
// {"error":{"code":…,"message":…,"details":[…]}}.
type apiError struct {
	status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Details []any  `json:"details,omitempty"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errBadRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf(format, args...)}
}

func errNotFound(format string, args ...any) *apiError {
	return &apiError{status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf(format, args...)}
}

func errConflict(format string, args ...any) *apiError {
	return &apiError{status: http.StatusConflict, Code: "conflict", Message: fmt.Sprintf(format, args...)}
}

func errVersion(have string) *apiError {
	return &apiError{status: http.StatusPreconditionFailed, Code: "version_mismatch",
		Message: fmt.Sprintf("If-Match does not match the current version %q", have)}
}

func errTooLarge(limit int64) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
		Message: fmt.Sprintf("request body exceeds %d bytes", limit)}
}

// writeError answers with err in the envelope; errors that are not apiErrors
// become 500 internal.
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			ae = errTooLarge(mbe.Limit)
		} else {
			ae = &apiError{status: http.StatusInternalServerError, Code: "internal", Message: err.Error()}
		}
	}
	if ae.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
	}
	writeJSON(w, ae.status, map[string]any{"error": ae})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
