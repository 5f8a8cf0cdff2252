package volume

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrorKind is one upstream exception class (cinder/exception.py): its name,
// the HTTP status upstream answers with, and its parent class. Kinds are
// sentinels: errors.Is(err, ErrInvalidVolume) matches every *Error of that
// kind, and errors.Is(err, ErrInvalid) every kind below Invalid.
type ErrorKind struct {
	name   string
	status int
	parent *ErrorKind
}

// Name is the upstream exception name, for example "InvalidVolume".
func (k *ErrorKind) Name() string { return k.name }

// HTTPStatus is the status code upstream's API answers this exception with.
func (k *ErrorKind) HTTPStatus() int { return k.status }

// Error makes a kind usable as an errors.Is target.
func (k *ErrorKind) Error() string { return "volume: " + k.name }

// Unwrap exposes the parent class, so errors.Is climbs the hierarchy.
func (k *ErrorKind) Unwrap() error {
	if k.parent == nil {
		return nil
	}
	return k.parent
}

// The upstream exception classes the volume side raises, with the HTTP status
// each carries upstream.
var (
	// ErrNotAuthorized: cinder NotAuthorized, 403.
	ErrNotAuthorized = &ErrorKind{"NotAuthorized", http.StatusForbidden, nil}
	// ErrPolicyNotAuthorized: cinder PolicyNotAuthorized (a NotAuthorized),
	// 403: the caller's role does not allow the action (admin-only actions).
	ErrPolicyNotAuthorized = &ErrorKind{"PolicyNotAuthorized", http.StatusForbidden, ErrNotAuthorized}

	// ErrInvalid: cinder Invalid, 400, the parent of the bad-request kinds.
	ErrInvalid = &ErrorKind{"Invalid", http.StatusBadRequest, nil}
	// ErrInvalidInput: cinder InvalidInput, 400 (also what upstream's request
	// schema validation answers, for example for a mode other than rw/ro).
	ErrInvalidInput = &ErrorKind{"InvalidInput", http.StatusBadRequest, ErrInvalid}
	// ErrInvalidVolume: cinder InvalidVolume, 400: the volume's status or
	// attachments forbid the action.
	ErrInvalidVolume = &ErrorKind{"InvalidVolume", http.StatusBadRequest, ErrInvalid}
	// ErrInvalidUUID: cinder InvalidUUID, 400.
	ErrInvalidUUID = &ErrorKind{"InvalidUUID", http.StatusBadRequest, ErrInvalid}
	// ErrInvalidVolumeAttachMode: cinder InvalidVolumeAttachMode, 400: a
	// read-only volume attached with a mode other than ro.
	ErrInvalidVolumeAttachMode = &ErrorKind{"InvalidVolumeAttachMode", http.StatusBadRequest, ErrInvalid}
	// ErrResourceConflict: cinder ResourceConflict, 409 (upstream derives it
	// from Invalid yet answers 409): duplicate connectors, an attachment
	// update on a volume in an error status, or a store conflict that
	// persisted after the retries.
	ErrResourceConflict = &ErrorKind{"ResourceConflict", http.StatusConflict, ErrInvalid}

	// ErrConflict: cinder Conflict, 409.
	ErrConflict = &ErrorKind{"Conflict", http.StatusConflict, nil}
	// ErrConflictNovaUsingAttachment: cinder ConflictNovaUsingAttachment (a
	// Conflict), 409: a caller that is not the compute service tried to
	// remove an attachment the compute side still uses (bug 2004555).
	ErrConflictNovaUsingAttachment = &ErrorKind{"ConflictNovaUsingAttachment", http.StatusConflict, ErrConflict}

	// ErrNotFound: cinder NotFound, 404.
	ErrNotFound = &ErrorKind{"NotFound", http.StatusNotFound, nil}
	// ErrVolumeNotFound: cinder VolumeNotFound, 404.
	ErrVolumeNotFound = &ErrorKind{"VolumeNotFound", http.StatusNotFound, ErrNotFound}
	// ErrVolumeAttachmentNotFound: cinder VolumeAttachmentNotFound, 404.
	ErrVolumeAttachmentNotFound = &ErrorKind{"VolumeAttachmentNotFound", http.StatusNotFound, ErrNotFound}

	// ErrVolumeBackendAPIException: cinder VolumeBackendAPIException, 500:
	// the storage backend failed.
	ErrVolumeBackendAPIException = &ErrorKind{"VolumeBackendAPIException", http.StatusInternalServerError, nil}
)

// Error is a refusal or failure of the volume side: its upstream kind, a
// message naming the rule, the rule's name when a guard or table row decided,
// and the cause. Match it with errors.Is(err, ErrInvalidVolume) or
// errors.As(err, &e) for the details.
type Error struct {
	// Kind is the upstream exception class.
	Kind *ErrorKind
	// Rule names the rule that refused: a guard name, fsm.RuleNoTransition,
	// or an upstream check ("validate_connector"); empty for failures.
	Rule string
	// Reason is the human message, in upstream's words where it has them.
	Reason string
	// Err is the underlying cause (a backend or store error), if any.
	Err error
}

// Error renders the kind, the reason and the cause.
func (e *Error) Error() string {
	msg := e.Kind.name + ": " + e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap exposes the kind (and through it its parents) and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// HTTPStatus is the status upstream would answer with.
func (e *Error) HTTPStatus() int { return e.Kind.status }

// newError builds an *Error of kind for rule with a formatted reason.
func newError(kind *ErrorKind, rule, format string, args ...any) *Error {
	return &Error{Kind: kind, Rule: rule, Reason: fmt.Sprintf(format, args...)}
}

// HTTPStatus returns the HTTP status upstream answers err with: that of the
// first *Error in err's chain, 500 for any other non-nil error, and 200 for
// nil.
func HTTPStatus(err error) int {
	if err == nil {
		return http.StatusOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.HTTPStatus()
	}
	return http.StatusInternalServerError
}
