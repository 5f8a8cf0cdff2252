package storage

import (
	"errors"
	"fmt"
	"strings"
)

// Errors every backend returns, checked with errors.Is. Backend-specific
// failures wrap one of these and, when a command failed, a *CommandError.
var (
	// ErrInvalidVolumeID: the id is empty, too long, or could escape the
	// backend's directory or an iSCSI name.
	ErrInvalidVolumeID = errors.New("storage: invalid volume id")
	// ErrInvalidConnector: the connector names neither an initiator nor an
	// address, or carries a malformed field (upstream InvalidConnectorException).
	ErrInvalidConnector = errors.New("storage: invalid connector")
	// ErrUnknownFormat: the volume's format is neither qcow2 nor raw.
	ErrUnknownFormat = errors.New("storage: unknown volume format")
	// ErrUnsupportedFormat: a known format the backend cannot export (a
	// qcow2 file behind an iSCSI LUN would show its header to the initiator).
	ErrUnsupportedFormat = errors.New("storage: volume format not supported by this backend")
	// ErrInvalidSize: the volume's size is not positive.
	ErrInvalidSize = errors.New("storage: invalid volume size")
	// ErrVolumeNotFound: the volume's storage does not exist.
	ErrVolumeNotFound = errors.New("storage: volume not found")
	// ErrVolumeConflict: storage for the id exists with another format or size.
	ErrVolumeConflict = errors.New("storage: volume exists with different properties")
	// ErrExportNotFound: initialize_connection before create_export
	// (upstream ISCSITargetNotFoundForVolume).
	ErrExportNotFound = errors.New("storage: volume is not exported")
	// ErrExportFailure: create_export failed (upstream ExportFailure).
	ErrExportFailure = errors.New("storage: export failed")
	// ErrRemoveExportFailure: remove_export failed (upstream RemoveExportException).
	ErrRemoveExportFailure = errors.New("storage: remove export failed")
	// ErrConnectionFailure: granting or revoking a connector's access failed
	// (upstream ISCSITargetAttachFailed / ISCSITargetDetachFailed).
	ErrConnectionFailure = errors.New("storage: connection update failed")
	// ErrInvalidConfig: a backend Config is unusable.
	ErrInvalidConfig = errors.New("storage: invalid backend configuration")
)

// CommandError is a failed external command (qemu-img, tgtadm, qemu-nbd),
// the upstream ProcessExecutionError. Args never hold secrets: the runner
// masks them before building the error.
type CommandError struct {
	// Name is the command, for example "tgtadm".
	Name string
	// Args are its arguments, secrets masked.
	Args []string
	// ExitCode is the exit status, or -1 when the command did not exit
	// normally (not found, killed, context done).
	ExitCode int
	// Stderr is the command's standard error, trimmed.
	Stderr string
	// Err is the underlying error (*exec.ExitError, exec.ErrNotFound,
	// context.DeadlineExceeded, ...).
	Err error
}

// Error renders the command, its exit status and its stderr.
func (e *CommandError) Error() string {
	var b strings.Builder
	b.WriteString(e.Name)
	for _, a := range e.Args {
		b.WriteByte(' ')
		b.WriteString(a)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if e.Stderr != "" {
		b.WriteString(": ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *CommandError) Unwrap() error { return e.Err }
