package compute

import (
	"errors"
	"fmt"
	"net/http"
)

// Exception is an upstream exception class (nova/exception.py): its name,
// the class it derives from, and the HTTP status the compute API answers
// with when it is raised (upstream's code, or the status the API controller
// maps it to, as for InstanceInvalidState). The Err* values below are the
// classes; errors.Is(err, ErrInvalid) matches every raised exception whose
// class is ErrInvalid or derives from it, as `except Invalid` does upstream.
type Exception struct {
	Name   string
	Parent *Exception
	Code   int
}

// Error names the class.
func (e *Exception) Error() string { return "compute: " + e.Name }

// The upstream exception classes the compute side raises.
var (
	// ErrInvalid is upstream Invalid, the base of every 400 refusal.
	ErrInvalid = &Exception{Name: "Invalid", Code: http.StatusBadRequest}
	// ErrNotFound is upstream NotFound.
	ErrNotFound = &Exception{Name: "NotFound", Code: http.StatusNotFound}
	// ErrInstanceInvalidState: the instance is in a vm_state or task_state
	// the operation does not accept, or has never been launched. The API
	// answers 409 (common.raise_http_conflict_for_instance_invalid_state).
	ErrInstanceInvalidState = &Exception{Name: "InstanceInvalidState", Parent: ErrInvalid, Code: http.StatusConflict}
	// ErrInstanceIsLocked: the instance is locked and the caller is not an
	// admin (upstream @check_instance_lock).
	ErrInstanceIsLocked = &Exception{Name: "InstanceIsLocked", Parent: ErrInstanceInvalidState, Code: http.StatusConflict}
	// ErrInvalidDevicePath: the requested device path does not match
	// upstream's match_device pattern.
	ErrInvalidDevicePath = &Exception{Name: "InvalidDevicePath", Parent: ErrInvalid, Code: http.StatusBadRequest}
	// ErrDevicePathInUse: the device name is already used on the instance.
	ErrDevicePathInUse = &Exception{Name: "DevicePathInUse", Parent: ErrInvalid, Code: http.StatusConflict}
	// ErrInvalidBDM is upstream InvalidBDM.
	ErrInvalidBDM = &Exception{Name: "InvalidBDM", Parent: ErrInvalid, Code: http.StatusBadRequest}
	// ErrTooManyDiskDevices: no free device name left on the bus, or more
	// disks than max_disk_devices_to_attach.
	ErrTooManyDiskDevices = &Exception{Name: "TooManyDiskDevices", Parent: ErrInvalidBDM, Code: http.StatusForbidden}
	// ErrInvalidVolume: the volume cannot be attached or detached in its
	// current state; it wraps the volume side's refusal when there is one.
	ErrInvalidVolume = &Exception{Name: "InvalidVolume", Parent: ErrInvalid, Code: http.StatusBadRequest}
	// ErrInstanceNotFound: no such instance (no record, or no guest on the
	// hypervisor).
	ErrInstanceNotFound = &Exception{Name: "InstanceNotFound", Parent: ErrNotFound, Code: http.StatusNotFound}
	// ErrVolumeNotFound: no such volume.
	ErrVolumeNotFound = &Exception{Name: "VolumeNotFound", Parent: ErrNotFound, Code: http.StatusNotFound}
	// ErrVolumeBDMNotFound: the volume is not attached to the instance (no
	// block device mapping for the pair).
	ErrVolumeBDMNotFound = &Exception{Name: "VolumeBDMNotFound", Parent: ErrNotFound, Code: http.StatusNotFound}
	// ErrVolumeBDMIsRoot: detach of the instance's root device (upstream
	// "Cannot detach a root device volume", 400).
	ErrVolumeBDMIsRoot = &Exception{Name: "VolumeBDMIsRoot", Parent: ErrInvalid, Code: http.StatusBadRequest}
	// ErrNotSupported is upstream NotSupported (400).
	ErrNotSupported = &Exception{Name: "NotSupported", Code: http.StatusBadRequest}
	// ErrMultiattachNotSupportedOldMicroversion: a multiattach volume needs
	// compute API microversion 2.60 or later.
	ErrMultiattachNotSupportedOldMicroversion = &Exception{Name: "MultiattachNotSupportedOldMicroversion", Parent: ErrInvalid, Code: http.StatusBadRequest}
	// ErrMultiattachToShelvedNotSupported: multiattach volumes cannot be
	// attached to a shelved_offloaded instance.
	ErrMultiattachToShelvedNotSupported = &Exception{Name: "MultiattachToShelvedNotSupported", Parent: ErrInvalid, Code: http.StatusBadRequest}
	// ErrVolumeTaggedAttachToShelvedNotSupported: tagged attach to a
	// shelved_offloaded instance.
	ErrVolumeTaggedAttachToShelvedNotSupported = &Exception{Name: "VolumeTaggedAttachToShelvedNotSupported", Parent: ErrInvalid, Code: http.StatusBadRequest}
	// ErrServiceUnavailable is upstream ServiceUnavailable.
	ErrServiceUnavailable = &Exception{Name: "ServiceUnavailable", Parent: ErrInvalid, Code: http.StatusConflict}
	// ErrComputeServiceUnavailable: the instance's compute host is down
	// (upstream check_instance_host(check_is_up=True) on detach; 409).
	ErrComputeServiceUnavailable = &Exception{Name: "ComputeServiceUnavailable", Parent: ErrServiceUnavailable, Code: http.StatusConflict}
	// ErrInvalidUUID: an id that is not a UUID.
	ErrInvalidUUID = &Exception{Name: "InvalidUUID", Parent: ErrInvalid, Code: http.StatusBadRequest}
	// ErrDeviceDetachFailed: the guest did not release the disk within the
	// retry policy (upstream DeviceDetachFailed); the detach is rolled back
	// with roll_detaching.
	ErrDeviceDetachFailed = &Exception{Name: "DeviceDetachFailed", Code: http.StatusInternalServerError}
	// ErrOperationTimedOut: the caller stopped waiting for the host; the
	// operation may still complete (it is not a failure of the attach).
	ErrOperationTimedOut = &Exception{Name: "OperationTimedOut", Code: http.StatusGatewayTimeout}
	// ErrOperationFault: a run of the operation failed in a way its code
	// did not foresee (a panic, recovered); the operation record is marked
	// with it and keeps its step.
	ErrOperationFault = &Exception{Name: "OperationFault", Code: http.StatusInternalServerError}
)

// Error is one raised exception: its class, a message, and the error that
// caused it (for example the volume side's refusal), if any.
type Error struct {
	Exception *Exception
	Message   string
	Err       error
}

// Raise returns an *Error of class ex with a formatted message. A %w verb
// in format makes the wrapped error the cause.
func Raise(ex *Exception, format string, args ...any) *Error {
	wrapped := fmt.Errorf(format, args...)
	return &Error{Exception: ex, Message: wrapped.Error(), Err: errors.Unwrap(wrapped)}
}

// Error is the class name and the message.
func (e *Error) Error() string { return e.Exception.Name + ": " + e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches e's class and every class it derives from.
func (e *Error) Is(target error) bool {
	for x := e.Exception; x != nil; x = x.Parent {
		if x == target {
			return true
		}
	}
	return false
}

// HTTPStatus is the status the compute API answers with.
func (e *Error) HTTPStatus() int { return e.Exception.Code }

// HTTPStatus returns the HTTP status the compute API answers err with: the
// status of the outermost exception in err's chain (compute's, or any error
// with an HTTPStatus method, such as the volume side's), else 500.
func HTTPStatus(err error) int {
	var s interface{ HTTPStatus() int }
	if errors.As(err, &s) {
		return s.HTTPStatus()
	}
	var ex *Exception
	if errors.As(err, &ex) {
		return ex.Code
	}
	return http.StatusInternalServerError
}
