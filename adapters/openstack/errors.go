package openstack

import (
	"errors"
	"net/http"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// HTTPError is an answer the API layer itself decides (bad body, bad
// microversion, no token, another project's resource), before or instead
// of calling the core.
type HTTPError struct {
	// Status is the HTTP status.
	Status int
	// Message is the text of the error body.
	Message string
}

// Error returns the message.
func (e *HTTPError) Error() string { return e.Message }

// HTTPStatus returns the status.
func (e *HTTPError) HTTPStatus() int { return e.Status }

func badRequest(format string, args ...any) *HTTPError {
	return &HTTPError{Status: http.StatusBadRequest, Message: sprintf(format, args...)}
}

func notFound(format string, args ...any) *HTTPError {
	return &HTTPError{Status: http.StatusNotFound, Message: sprintf(format, args...)}
}

func forbidden(format string, args ...any) *HTTPError {
	return &HTTPError{Status: http.StatusForbidden, Message: sprintf(format, args...)}
}

func conflict(format string, args ...any) *HTTPError {
	return &HTTPError{Status: http.StatusConflict, Message: sprintf(format, args...)}
}

// faultNames are the keys of upstream's error bodies by status
// (nova/api/openstack/wsgi.py Fault._fault_names; Cinder uses the same).
var faultNames = map[int]string{
	http.StatusBadRequest:            "badRequest",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "itemNotFound",
	http.StatusMethodNotAllowed:      "badMethod",
	http.StatusConflict:              "conflictingRequest",
	http.StatusRequestEntityTooLarge: "overLimit",
	http.StatusUnsupportedMediaType:  "badMediaType",
	http.StatusTooManyRequests:       "overLimit",
	http.StatusNotImplemented:        "notImplemented",
	http.StatusServiceUnavailable:    "serviceUnavailable",
}

// faultName returns the error body's key for status; computeFault for
// any other (upstream's default).
func faultName(status int) string {
	if n, ok := faultNames[status]; ok {
		return n
	}
	return "computeFault"
}

// unexpectedMessage is what a 500 says; the cause is only logged, as
// upstream answers an unexpected exception.
const unexpectedMessage = "Unexpected API Error. Please report this at the volattach issue tracker and attach the volattachd log if possible."

// statusOf returns the HTTP status err answers with: an *HTTPError's, else
// the core's (compute's exception classes, the volume side's kinds).
func statusOf(err error) int {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status
	}
	var ce *compute.Error
	if errors.As(err, &ce) {
		return compute.HTTPStatus(err)
	}
	if errors.Is(err, volattach.ErrUnavailable) {
		return http.StatusServiceUnavailable
	}
	return volume.HTTPStatus(err)
}

// unavailableMessage is what a 503 for an unreachable or leaderless store
// says: retry; the cause (endpoints, etcd's words) is only logged.
const unavailableMessage = "The service is temporarily unavailable (its store cannot decide now); retry later."

// messageOf is the error body's message: the refusal in the core's words
// (class and reason), or the generic text for a server fault.
func messageOf(err error, status int) string {
	if status >= 500 && status != http.StatusNotImplemented && status != http.StatusServiceUnavailable {
		var ce *compute.Error
		if !errors.As(err, &ce) {
			return unexpectedMessage
		}
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Message
	}
	var ce *compute.Error
	if status == http.StatusServiceUnavailable && errors.Is(err, volattach.ErrUnavailable) && !errors.As(err, &ce) {
		return unavailableMessage
	}
	return err.Error()
}

// fault is an upstream error body: {"<kind>": {"code": N, "message": ...}}.
type fault struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// writeError answers err with upstream's error body.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status < 400 {
		status = http.StatusInternalServerError
	}
	msg := messageOf(err, status)
	if status >= 500 {
		logOf(r).WithError(err).Error("request failed")
	} else {
		logOf(r).WithField("status", status).Info(msg)
	}
	writeJSON(w, status, map[string]fault{faultName(status): {Code: status, Message: msg}})
}
