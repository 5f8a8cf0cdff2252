package libvirt

import (
	"errors"
	"fmt"

	"github.com/volattach/volattach/compute"
)

var (
	// ErrCallTimeout: libvirtd did not answer a call within the call
	// timeout; the connection was dropped and the next call reconnects. The
	// call may still have taken effect in libvirtd.
	ErrCallTimeout = errors.New("libvirt: call timed out")
	// ErrConnectionLost: the connection to libvirtd broke during a call;
	// the call may or may not have taken effect.
	ErrConnectionLost = errors.New("libvirt: connection lost")
	// ErrClosed: the adapter was closed.
	ErrClosed = errors.New("libvirt: adapter closed")
	// ErrInvalidDiskInfo: the disk description (device name, bus, device
	// type, serial) cannot be rendered as a guest disk.
	ErrInvalidDiskInfo = errors.New("libvirt: invalid disk info")
	// ErrInvalidConfig: an option given to New is invalid.
	ErrInvalidConfig = errors.New("libvirt: invalid configuration")
)

// FieldError says which connection_info field a protocol driver found
// missing or malformed. It matches compute.ErrInvalidConnectionInfo.
type FieldError struct {
	// DriverVolumeType is the protocol the connection speaks.
	DriverVolumeType string
	// Field is the connection_info data key, for example "target_portal".
	Field string
	// Reason says what is wrong: "missing", or why the value is malformed.
	Reason string
}

// Error names the protocol, the field and what is wrong with it.
func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %s connection_info field %q: %s",
		compute.ErrInvalidConnectionInfo, e.DriverVolumeType, e.Field, e.Reason)
}

// Unwrap makes a FieldError match compute.ErrInvalidConnectionInfo.
func (e *FieldError) Unwrap() error { return compute.ErrInvalidConnectionInfo }

func missingField(dvt, field string) error {
	return &FieldError{DriverVolumeType: dvt, Field: field, Reason: "missing"}
}

func badField(dvt, field, reason string) error {
	return &FieldError{DriverVolumeType: dvt, Field: field, Reason: reason}
}
