package compute

import (
	"context"
	"errors"

	"github.com/volattach/volattach/volume"
)

// VolumeAPI is the volume side as the compute side calls it (the role of
// upstream nova.volume.cinder.API): the legacy attach flow (reserve,
// initialize_connection, attach, ...) for instances on a host, and the
// attachments API for shelved_offloaded instances, as upstream uses it
// there (an attachment completed without a connector). volume.Service
// satisfies it in process; a remote client could satisfy it over HTTP.
// Every call is one guarded change on the volume side and is idempotent
// where upstream's is (attach of an instance already attached returns its
// attachment; unreserve and roll_detaching of a volume not in the expected
// status do nothing).
type VolumeAPI interface {
	// GetVolume returns the volume (VolumeNotFound).
	GetVolume(ctx context.Context, volumeID string) (*volume.Volume, error)
	// Attachments returns the volume's attachment records.
	Attachments(ctx context.Context, volumeID string) ([]*volume.Attachment, error)
	// Reserve moves an available volume (or an in-use multiattach one) to
	// attaching (os-reserve).
	Reserve(ctx context.Context, volumeID string) error
	// Unreserve undoes Reserve (os-unreserve).
	Unreserve(ctx context.Context, volumeID string) error
	// BeginDetaching moves an in-use volume to detaching (os-begin_detaching).
	BeginDetaching(ctx context.Context, volumeID string) error
	// RollDetaching moves a detaching volume back to in-use (os-roll_detaching).
	RollDetaching(ctx context.Context, volumeID string) error
	// InitializeConnection exports the volume to the connector's host and
	// returns how to reach it (os-initialize_connection).
	InitializeConnection(ctx context.Context, volumeID string, conn volume.Connector) (volume.ConnectionInfo, error)
	// TerminateConnection revokes the connector's access (os-terminate_connection).
	TerminateConnection(ctx context.Context, volumeID string, conn volume.Connector) error
	// Attach records the attachment of the volume to the instance at
	// mountpoint with mode (os-attach).
	Attach(ctx context.Context, volumeID, instanceUUID, host, mountpoint, mode string) (*volume.Attachment, error)
	// Detach ends the attachment and recomputes the volume's status
	// (os-detach).
	Detach(ctx context.Context, volumeID, attachmentID string) error
	// AttachmentCreate reserves the volume for the instance with a new
	// attachment, without a connector (POST /attachments): the
	// shelved_offloaded path, which has no host to connect.
	AttachmentCreate(ctx context.Context, volumeID, instanceUUID string, conn *volume.Connector, mode string) (*volume.Attachment, error)
	// AttachmentComplete marks the attachment attached and the volume
	// in-use (os-complete).
	AttachmentComplete(ctx context.Context, attachmentID string) error
	// AttachmentDelete removes the attachment and recomputes the volume's
	// status (DELETE /attachments/{id}).
	AttachmentDelete(ctx context.Context, attachmentID string) error
	// CreateVolume creates a volume and waits until it is available (for
	// blank mappings).
	CreateVolume(ctx context.Context, spec volume.VolumeSpec) (*volume.Volume, error)
	// DeleteVolume deletes a volume (DELETE /volumes/{id}): the detach
	// from a shelved_offloaded instance of a delete_on_termination mapping.
	DeleteVolume(ctx context.Context, volumeID string) error
}

// volumeError turns a volume-side refusal into the compute side's
// exception, as nova.volume.cinder translates Cinder's answers: not found is
// VolumeNotFound (404), any bad-request refusal is InvalidVolume (400);
// the volume side's error stays reachable with errors.Is/As.
func volumeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, volume.ErrVolumeNotFound):
		return Raise(ErrVolumeNotFound, "%w", err)
	case errors.Is(err, volume.ErrInvalid):
		return Raise(ErrInvalidVolume, "%w", err)
	}
	return err
}
