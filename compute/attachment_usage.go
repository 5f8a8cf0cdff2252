package compute

import (
	"context"
	"errors"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// AttachmentUsage answers the volume side's attachment_deletion_allowed
// question (upstream cinder asks nova's get_server_volume): does an
// instance still use an attachment of a volume? It does while the
// instance's block device mapping of the volume names that attachment. A
// missing mapping, or one naming another attachment, is "no", as upstream
// (nova NotFound, or a mismatched attachment id).
type AttachmentUsage struct {
	// Store is where the mappings live (the compute API's store).
	Store volattach.Store
}

var _ volume.AttachmentUsage = AttachmentUsage{}

// InstanceUsesAttachment reports whether instanceUUID's mapping of volumeID
// names attachmentID.
func (u AttachmentUsage) InstanceUsesAttachment(ctx context.Context, instanceUUID, volumeID, attachmentID string) (bool, error) {
	m := &BlockDeviceMapping{VolumeID: volumeID, InstanceUUID: instanceUUID}
	if err := u.Store.Get(ctx, m); err != nil {
		if errors.Is(err, volattach.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	return m.AttachmentID == attachmentID, nil
}

// ServiceVolumes returns v with every call marked as the compute service's
// (volume.WithServiceToken), as upstream nova sends its service token to
// cinder: the volume side then lets the compute side remove attachments
// its instances use, which it refuses to any other caller. Wire it where a
// VolumeAPI is given to the API, the Manager and the Reconciler.
func ServiceVolumes(v VolumeAPI) VolumeAPI { return serviceVolumes{v} }

// serviceVolumes is ServiceVolumes' wrapper.
type serviceVolumes struct{ v VolumeAPI }

func svc(ctx context.Context) context.Context { return volume.WithServiceToken(ctx) }

func (s serviceVolumes) GetVolume(ctx context.Context, volumeID string) (*volume.Volume, error) {
	return s.v.GetVolume(svc(ctx), volumeID)
}

func (s serviceVolumes) Attachments(ctx context.Context, volumeID string) ([]*volume.Attachment, error) {
	return s.v.Attachments(svc(ctx), volumeID)
}

func (s serviceVolumes) Reserve(ctx context.Context, volumeID string) error {
	return s.v.Reserve(svc(ctx), volumeID)
}

func (s serviceVolumes) Unreserve(ctx context.Context, volumeID string) error {
	return s.v.Unreserve(svc(ctx), volumeID)
}

func (s serviceVolumes) BeginDetaching(ctx context.Context, volumeID string) error {
	return s.v.BeginDetaching(svc(ctx), volumeID)
}

func (s serviceVolumes) RollDetaching(ctx context.Context, volumeID string) error {
	return s.v.RollDetaching(svc(ctx), volumeID)
}

func (s serviceVolumes) InitializeConnection(ctx context.Context, volumeID string, conn volume.Connector) (volume.ConnectionInfo, error) {
	return s.v.InitializeConnection(svc(ctx), volumeID, conn)
}

func (s serviceVolumes) TerminateConnection(ctx context.Context, volumeID string, conn volume.Connector) error {
	return s.v.TerminateConnection(svc(ctx), volumeID, conn)
}

func (s serviceVolumes) Attach(ctx context.Context, volumeID, instanceUUID, host, mountpoint, mode string) (*volume.Attachment, error) {
	return s.v.Attach(svc(ctx), volumeID, instanceUUID, host, mountpoint, mode)
}

func (s serviceVolumes) Detach(ctx context.Context, volumeID, attachmentID string) error {
	return s.v.Detach(svc(ctx), volumeID, attachmentID)
}

func (s serviceVolumes) AttachmentCreate(ctx context.Context, volumeID, instanceUUID string, conn *volume.Connector, mode string) (*volume.Attachment, error) {
	return s.v.AttachmentCreate(svc(ctx), volumeID, instanceUUID, conn, mode)
}

func (s serviceVolumes) AttachmentComplete(ctx context.Context, attachmentID string) error {
	return s.v.AttachmentComplete(svc(ctx), attachmentID)
}

func (s serviceVolumes) AttachmentDelete(ctx context.Context, attachmentID string) error {
	return s.v.AttachmentDelete(svc(ctx), attachmentID)
}

func (s serviceVolumes) CreateVolume(ctx context.Context, spec volume.VolumeSpec) (*volume.Volume, error) {
	return s.v.CreateVolume(svc(ctx), spec)
}

func (s serviceVolumes) DeleteVolume(ctx context.Context, volumeID string) error {
	return s.v.DeleteVolume(svc(ctx), volumeID)
}
