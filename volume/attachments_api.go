package volume

import (
	"context"

	"github.com/volattach/volattach"
)

// RuleConnectorHost names the refusal of an attachments-API connector
// without a host (upstream locks on connector[host] and fails without it).
const RuleConnectorHost = "connector_host_given"

// attachmentsConnector checks a connector of the attachments API.
func attachmentsConnector(c Connector) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Host == "" {
		return newError(ErrInvalidInput, RuleConnectorHost, "connector: host is required")
	}
	return nil
}

// AttachmentCreate reserves a volume for an instance (upstream POST
// /attachments, cinder/volume/api.py attachment_create): a volume in an
// error status is refused; available or downloading (or in-use when
// multiattach) becomes reserved; an in-use or reserved volume that already
// has an attachment for this instance takes another one without changing
// status (live migration); anything else is InvalidVolume (400). The new
// attachment is reserved, in mode ro for a read-only volume, else mode
// ("" leaves it to the connector; otherwise rw or ro).
//
// With a connector, the new attachment is then connected under the same
// lock as upstream's manager-side attachment_update does it (connection
// initialised, attachment and volume attaching), without the API's checks
// of AttachmentUpdate: no duplicate-connector refusal, so that live
// migration can connect the destination host of an instance that is
// attached on its source host; if that fails, the reservation stays, as
// upstream, and the error is returned. instanceUUID, when given, must be a
// UUID (InvalidUUID, 400, nothing persisted).
func (s *Service) AttachmentCreate(ctx context.Context, volumeID, instanceUUID string, connector *Connector, mode string) (*Attachment, error) {
	if instanceUUID != "" && !IsUUIDLike(instanceUUID) {
		return nil, newError(ErrInvalidUUID, RuleInstanceUUIDLike, "expected a UUID but received %s", instanceUUID)
	}
	if mode != "" {
		if _, err := attachModeArg(mode); err != nil {
			return nil, err
		}
	}
	var created *Attachment
	build := func(st *state, c *change) error {
		req := &Request{Volume: st.vol, Attachments: st.atts, InstanceUUID: instanceUUID}
		event := EventAttachmentCreate
		if _, err := statusTable.Next(st.vol.Status, event, req); err != nil {
			if !statusTable.Can(st.vol.Status, EventAttachmentCreateSameInstance, req) {
				return err
			}
			event = EventAttachmentCreateSameInstance
		}
		if err := c.fireVolume(event, req); err != nil {
			return err
		}
		created = &Attachment{
			ID: s.newID(), VolumeID: st.vol.ID, InstanceUUID: instanceUUID,
			AttachStatus: AttachReserved, AttachMode: mode,
		}
		if st.vol.ReadOnly() {
			// cinder/volume/api.py attachment_create: readonly admin metadata forces ro.
			created.AttachMode = ModeRO
		}
		c.createAttachment(created, AttachEventCreate)
		return nil
	}
	var b Backend
	if connector != nil {
		if err := attachmentsConnector(*connector); err != nil {
			return nil, err
		}
		st, err := s.read(ctx, volumeID)
		if err != nil {
			return nil, err
		}
		if b, err = s.backend(st.vol); err != nil {
			return nil, err
		}
		if err := validateForBackend(b, *connector); err != nil {
			return nil, err
		}
	}
	if _, err := s.dryRun(ctx, volumeID, "attachment_create", build); err != nil {
		return nil, err
	}
	var out *Attachment
	err := s.locked(ctx, volumeID, func(ctx context.Context, lk volattach.Lock) error {
		if connector == nil {
			// The reservation is the section's last commit: it releases
			// the lock.
			if _, err := s.applyReleasing(ctx, lk, volumeID, "attachment_create", build); err != nil {
				return err
			}
			out = created
			return nil
		}
		if _, err := s.apply(ctx, lk, volumeID, "attachment_create", build); err != nil {
			return err
		}
		out = created
		var err error
		out, err = s.attachmentUpdate(ctx, lk, volumeID, created.ID, *connector, EventAttachmentConnect)
		return err
	})
	return out, err
}

// AttachmentUpdate connects a reserved attachment to the host of connector
// (upstream PUT /attachments/{id}, api.py and manager.py attachment_update):
// refused with ResourceConflict (409) on a volume in an error status or
// when a volume that is not multiattach would hold two connections
// ("duplicate connectors"). The backend exports the volume and initialises
// the connection (a failure removes the export again, 500, and changes
// nothing); then one commit sets the attachment attaching, with the
// connector, connection_info, host, mountpoint and mode (the attachment's
// mode when it has one, else the connector's, else rw), and the volume
// attaching, its attach status attaching (upstream volume_attached with
// mark_attached=False writes both).
func (s *Service) AttachmentUpdate(ctx context.Context, attachmentID string, connector Connector) (*Attachment, error) {
	if err := attachmentsConnector(connector); err != nil {
		return nil, err
	}
	a, err := s.readAttachment(ctx, attachmentID)
	if err != nil {
		return nil, err
	}
	st, err := s.read(ctx, a.VolumeID)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.updatable(st, attachmentID, connector, EventAttachmentUpdate); err != nil {
		return nil, err
	}
	var out *Attachment
	err = s.locked(ctx, a.VolumeID, func(ctx context.Context, lk volattach.Lock) error {
		var err error
		out, err = s.attachmentUpdate(ctx, lk, a.VolumeID, attachmentID, connector, EventAttachmentUpdate)
		return err
	})
	return out, err
}

// updatable checks an attachment update (event: the API's
// attachment_update, or the manager's alone) on st and returns the
// attachment and the volume's backend.
func (s *Service) updatable(st *state, attachmentID string, connector Connector, event Event) (*Attachment, Backend, error) {
	a := st.attachment(attachmentID)
	if a == nil {
		return nil, nil, newError(ErrVolumeAttachmentNotFound, "", "volume attachment could not be found with filter: attachment_id = %s", attachmentID)
	}
	req := &Request{Volume: st.vol, Attachments: st.atts, Attachment: a}
	if _, err := statusTable.Next(st.vol.Status, event, req); err != nil {
		return nil, nil, err
	}
	if _, err := attachTable.Next(a.AttachStatus, AttachEventUpdate, req); err != nil {
		return nil, nil, err
	}
	b, err := s.backend(st.vol)
	if err != nil {
		return nil, nil, err
	}
	return a, b, validateForBackend(b, connector)
}

// attachmentUpdate is AttachmentUpdate under the volume lock, its volume
// moving along event's row (EventAttachmentUpdate, or
// EventAttachmentConnect for attachment_create with a connector). Its
// commit ends the locked section and releases lk.
func (s *Service) attachmentUpdate(ctx context.Context, lk volattach.Lock, volumeID, attachmentID string, connector Connector, event Event) (*Attachment, error) {
	st, err := s.read(ctx, volumeID)
	if err != nil {
		return nil, err
	}
	a, b, err := s.updatable(st, attachmentID, connector, event)
	if err != nil {
		return nil, err
	}
	s.notify(ctx, NotifyAttachStart, st.vol, a)
	// cinder/volume/manager.py attachment_update: the mode given at
	// attachment_create overrides the connector's.
	mode := connector.Mode
	if a.AttachMode != "" {
		mode = a.AttachMode
	}
	if mode == "" {
		mode = ModeRW
	}
	connector.Mode = mode
	info, err := s.connect(ctx, b, st, a, connector, mode)
	if err != nil {
		return nil, err
	}
	var out *Attachment
	_, err = s.applyReleasing(ctx, lk, volumeID, "attachment_update", func(st *state, c *change) error {
		a := st.attachment(attachmentID)
		if a == nil {
			return newError(ErrVolumeAttachmentNotFound, "", "volume attachment could not be found with filter: attachment_id = %s", attachmentID)
		}
		req := &Request{Volume: st.vol, Attachments: st.atts, Attachment: a}
		if err := c.fireVolume(event, req); err != nil {
			return err
		}
		if err := c.fireAttachment(a, AttachEventUpdate, req); err != nil {
			return err
		}
		conn, ci := connector, info
		a.Connector, a.ConnectionInfo = &conn, &ci
		a.AttachedHost, a.Mountpoint, a.AttachMode = connector.Host, connector.Mountpoint, mode
		a.Message = ""
		out = a
		// cinder/db/api.py volume_attached(mark_attached=False): the
		// volume's attach_status is attaching, whatever else is attached.
		st.vol.AttachStatus = AttachAttaching
		return nil
	})
	if err != nil {
		s.logger(ctx, "attachment_update", volumeID).WithError(err).Error("connection initialised but not recorded; the export may remain")
		return nil, err
	}
	return out, nil
}

// AttachmentComplete marks an attachment attached and its volume in-use
// and attached (upstream POST /attachments/{id}/action os-complete, which
// has no precondition: any live attachment completes). Notification
// volume.attach.end.
func (s *Service) AttachmentComplete(ctx context.Context, attachmentID string) error {
	a, err := s.readAttachment(ctx, attachmentID)
	if err != nil {
		return err
	}
	var done *Attachment
	st, err := s.transact(ctx, a.VolumeID, "attachment_complete", func(st *state, c *change) error {
		a := st.attachment(attachmentID)
		if a == nil {
			return newError(ErrVolumeAttachmentNotFound, "", "volume attachment could not be found with filter: attachment_id = %s", attachmentID)
		}
		req := &Request{Volume: st.vol, Attachments: st.atts, Attachment: a}
		if err := c.fireAttachment(a, AttachEventComplete, req); err != nil {
			return err
		}
		if err := c.fireVolume(EventAttachmentComplete, req); err != nil {
			return err
		}
		if a.AttachTime.IsZero() {
			a.AttachTime = c.now
		}
		done = a
		c.summarize()
		return nil
	})
	if err != nil {
		return err
	}
	s.notify(ctx, NotifyAttachEnd, st.vol, done)
	return nil
}

// AttachmentDelete removes an attachment (upstream DELETE
// /attachments/{id}): the connection of its recorded connector is
// terminated unless another attachment on the same host uses it
// (host_share.go; a failure is a 500 and changes nothing), the export removed
// unless another attachment shares it (a failure there is only logged, as
// upstream), and one commit removes the attachment and recomputes the
// volume's status. Notifications volume.detach.start and .end.
func (s *Service) AttachmentDelete(ctx context.Context, attachmentID string) error {
	a, err := s.readAttachment(ctx, attachmentID)
	if err != nil {
		return err
	}
	volumeID := a.VolumeID
	caller := s.callerOf(ctx, Caller{})
	check := func(st *state) (*Attachment, error) {
		a := st.attachment(attachmentID)
		if a == nil {
			return nil, newError(ErrVolumeAttachmentNotFound, "", "volume attachment could not be found with filter: attachment_id = %s", attachmentID)
		}
		req := &Request{Volume: st.vol, Attachments: st.atts, Attachment: a, Caller: caller}
		if err := s.judgeDeletion(ctx, req, attachmentID); err != nil {
			return nil, err
		}
		if _, err := statusTable.Next(st.vol.Status, EventAttachmentDelete, req); err != nil {
			return nil, err
		}
		_, err := attachTable.Next(a.AttachStatus, AttachEventDelete, req)
		return a, err
	}
	st, err := s.read(ctx, volumeID)
	if err != nil {
		return err
	}
	if _, err := check(st); err != nil {
		return err
	}
	log := s.logger(ctx, "attachment_delete", volumeID).WithField("attachment_id", attachmentID)
	return s.locked(ctx, volumeID, func(ctx context.Context, lk volattach.Lock) error {
		st, err := s.read(ctx, volumeID)
		if err != nil {
			return err
		}
		target, err := check(st)
		if err != nil {
			return err
		}
		b, err := s.backend(st.vol)
		if err != nil {
			return err
		}
		s.notify(ctx, NotifyDetachStart, st.vol, target)
		if target.Connector != nil {
			if hostShared(st, target.Connector.Host, target) {
				log.WithField("host", target.Connector.Host).Info("another attachment on this host uses the connection; not terminating it")
			} else if err := b.TerminateConnection(ctx, *st.vol, *target.Connector); err != nil {
				log.WithError(err).Error("terminate volume connection failed")
				return backendError(err, "volume %s: terminate volume connection failed", volumeID)
			}
			if err := s.releaseStorage(ctx, b, st, target); err != nil {
				log.WithError(err).Warn("failed to detach volume on the backend, ignoring")
			}
		}
		st, err = s.applyReleasing(ctx, lk, volumeID, "attachment_delete", func(st *state, c *change) error {
			a := st.attachment(attachmentID)
			if a == nil {
				return nil
			}
			req := &Request{Volume: st.vol, Attachments: st.atts, Attachment: a}
			if err := c.fireAttachment(a, AttachEventDelete, req); err != nil {
				return err
			}
			c.dropAttachedMode()
			return c.settle(EventAttachmentDelete, Caller{})
		})
		if err != nil {
			return err
		}
		s.notify(ctx, NotifyDetachEnd, st.vol, target)
		return nil
	})
}
