package compute

import (
	"context"
	"errors"

	"github.com/volattach/volattach"
)

// UpdateAttachmentRequest changes what may change of a volume attachment
// (upstream PUT os-volume_attachments from microversion 2.85, nova's
// _update_volume_regular): delete_on_termination. The other fields are the
// attachment as the caller sees it; each one given must equal the
// mapping's, or the request is refused ("The X property is not mutable",
// 400). A nil field is not given.
type UpdateAttachmentRequest struct {
	// InstanceUUID and VolumeID name the attachment.
	InstanceUUID, VolumeID string
	// Device and Tag, when given, must be the mapping's.
	Device, Tag *string
	// DeleteOnTermination, when given, becomes the mapping's.
	DeleteOnTermination *bool
}

// updateAttempts bounds the re-reads of a mapping that an operation moved
// between the read and the commit.
const updateAttempts = 5

// UpdateAttachment applies req to the instance's mapping of the volume and
// returns the attachment as updated. Like upstream it takes no instance
// lock and checks no vm_state: it changes a field no running operation
// reads, in one commit compared on the mapping's revision, so an attach or
// detach that moves the mapping meanwhile makes it read again rather than
// be overwritten. VolumeBDMNotFound (404) when the volume is not attached.
func (a *API) UpdateAttachment(ctx context.Context, req UpdateAttachmentRequest) (*VolumeAttachment, error) {
	if _, err := a.instance(ctx, req.InstanceUUID); err != nil {
		return nil, err
	}
	for range updateAttempts {
		m, err := a.mapping(ctx, req.VolumeID, req.InstanceUUID)
		if err != nil {
			return nil, err
		}
		if m == nil {
			return nil, notAttached(req.InstanceUUID, req.VolumeID)
		}
		if req.Device != nil && *req.Device != m.DeviceName {
			return nil, Raise(ErrInvalid, "The device property is not mutable")
		}
		if req.Tag != nil && *req.Tag != m.Tag {
			return nil, Raise(ErrInvalid, "The tag property is not mutable")
		}
		if req.DeleteOnTermination == nil || *req.DeleteOnTermination == m.DeleteOnTermination {
			return viewOf(m), nil
		}
		m.DeleteOnTermination = *req.DeleteOnTermination
		_, err = a.cfg.Store.Commit(ctx, volattach.Txn{Puts: []volattach.Record{m}})
		if err == nil {
			return viewOf(m), nil
		}
		if !errors.Is(err, volattach.ErrConflict) {
			return nil, err
		}
	}
	return nil, Raise(ErrInvalidVolume, "the attachment of volume %s kept changing; try again", shortID(req.VolumeID))
}
