package compute

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// OperationResult is what a host agent leaves on the queue when an
// operation ends, and what the API hands back to a caller that waited.
type OperationResult struct {
	Operation string          `json:"operation"`
	Step      Step            `json:"step"`
	Device    string          `json:"device,omitempty"`
	Error     *OperationError `json:"error,omitempty"`
}

// resultOf is op's result.
func resultOf(op *Operation) OperationResult {
	return OperationResult{Operation: op.ID, Step: op.Step, Device: op.Device, Error: op.Error}
}

// Err returns the failure the result carries as an *Error of its upstream
// class, or nil when the operation succeeded.
func (r OperationResult) Err() error {
	if r.Error == nil {
		if r.Step == StepRolledBack {
			return Raise(ErrInvalidVolume, "operation %s was rolled back", r.Operation)
		}
		return nil
	}
	return r.Error.Err()
}

// Err rebuilds the persisted failure as an *Error of its upstream class
// (one of this package's, or a generic class carrying the recorded status).
func (e *OperationError) Err() error {
	ex := exceptionsByName[e.Name]
	if ex == nil {
		ex = &Exception{Name: e.Name, Code: e.Code}
	}
	return &Error{Exception: ex, Message: e.Message}
}

// operationError is err as persisted.
func operationError(err error) *OperationError {
	if err == nil {
		return nil
	}
	oe := &OperationError{Name: "Error", Code: HTTPStatus(err), Message: err.Error()}
	var ce *Error
	var ex *Exception
	var named interface{ Name() string }
	switch {
	case errors.As(err, &ce):
		oe.Name = ce.Exception.Name
	case errors.As(err, &ex):
		oe.Name = ex.Name
	case errors.As(err, &named):
		oe.Name = named.Name()
	}
	if oe.Code == 0 {
		oe.Code = http.StatusInternalServerError
	}
	return oe
}

func encodeResult(r OperationResult) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("compute: encoding a result cannot fail: %v", err))
	}
	return b
}

func decodeResult(b []byte) (OperationResult, error) {
	var r OperationResult
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("compute: undecodable operation result: %w", err)
	}
	return r, nil
}

// exceptionsByName finds a class from its persisted name.
var exceptionsByName = func() map[string]*Exception {
	m := map[string]*Exception{}
	for _, e := range []*Exception{
		ErrInvalid, ErrNotFound, ErrInstanceInvalidState, ErrInstanceIsLocked, ErrInvalidDevicePath,
		ErrDevicePathInUse, ErrInvalidBDM, ErrTooManyDiskDevices, ErrInvalidVolume, ErrInstanceNotFound,
		ErrVolumeNotFound, ErrVolumeBDMNotFound, ErrVolumeBDMIsRoot, ErrNotSupported,
		ErrMultiattachNotSupportedOldMicroversion, ErrMultiattachToShelvedNotSupported,
		ErrVolumeTaggedAttachToShelvedNotSupported, ErrServiceUnavailable, ErrComputeServiceUnavailable,
		ErrInvalidUUID, ErrDeviceDetachFailed, ErrOperationTimedOut, ErrOperationFault,
		ErrUnsupportedVolumeDriver, ErrInvalidConnectionInfo,
	} {
		m[e.Name] = e
	}
	return m
}()
