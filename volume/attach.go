package volume

import (
	"context"
	"fmt"

	"github.com/volattach/volattach"
)

// Rules of the legacy attach's input (upstream's os-attach request schema).
const (
	RuleAttachModeValid  = "attach_mode_valid"
	RuleInstanceOrHost   = "instance_or_host_given"
	RuleMountpointGiven  = "mountpoint_given"
	RuleInstanceUUIDLike = "instance_uuid_is_uuid"
	RuleReadonlyNeedsRO  = "readonly_volume_needs_ro"
	RuleAttachHook       = "backend_attach_hook"
)

// Messages recorded on an attachment that failed (upstream message_api
// events; shown to the volume's owner).
const (
	MessageAttachReadonly = "ATTACH_READONLY_VOLUME: the volume is read-only and can only be attached in mode ro"
	MessageAttachFailed   = "ATTACH_VOLUME: the storage backend failed to attach the volume"
	MessageInvalidUUID    = "ATTACH_VOLUME: the instance id is not a UUID"
)

// attachModeArg checks a requested mode; empty means rw (upstream's default).
func attachModeArg(mode string) (string, error) {
	switch mode {
	case "":
		return ModeRW, nil
	case ModeRW, ModeRO:
		return mode, nil
	}
	return "", newError(ErrInvalidInput, RuleAttachModeValid, "invalid attach mode %q: attaching mode should be rw or ro", mode)
}

// Attach records that a host attached the volume to an instance (upstream
// os-attach: cinder/volume/api.py attach, then manager.py attach_volume),
// under the volume's lock, in the seed's eight steps, in this order:
//
//  1. status attaching with a recorded attached_mode other than mode:
//     InvalidVolume ("being attached by different mode");
//  2. status in-use, not multiattach, not migrating: InvalidVolume
//     ("already attached");
//  3. an attachment of this volume for this instance (or, without an
//     instance, this host) already attached: the volume is set in-use and
//     that attachment returned (idempotent retry); one left attaching by an
//     attempt that never finished is resumed from step 5;
//  4. begin_attach: a new attachment in attaching, attached_mode recorded;
//  5. an instance id that is not a UUID: the attachment goes to
//     error_attaching, InvalidUUID;
//  6. a read-only volume and mode other than ro: error_attaching with a
//     user-visible message on the attachment, InvalidVolumeAttachMode;
//  7. the backend's AttachHook, if it has one; a failure: error_attaching,
//     VolumeBackendAPIException (500);
//  8. finish_attach: the attachment attached (instance, host, mountpoint,
//     mode), the volume in-use and attached.
//
// The checks of steps 1-2 (and a volume in maintenance) refuse before
// anything is written. Steps 4-6 (and 8 when the backend has no hook) are
// one commit; with a hook, begin_attach is committed before the hook runs
// (intent before side effect) and finish_attach or the failure after it.
// Unlike upstream, a failed attach restores attached_mode, so a retry in
// another mode is not refused by step 1. Notifications volume.attach.start
// and volume.attach.end surround the work.
//
// mode is "rw" (the default when empty) or "ro"; mountpoint and one of
// instanceUUID and host are required (upstream's request schema).
func (s *Service) Attach(ctx context.Context, volumeID, instanceUUID, host, mountpoint, mode string) (*Attachment, error) {
	mode, err := attachModeArg(mode)
	if err != nil {
		return nil, err
	}
	if instanceUUID == "" && host == "" {
		return nil, newError(ErrInvalidInput, RuleInstanceOrHost, "attach needs an instance_uuid or a host_name")
	}
	if mountpoint == "" {
		return nil, newError(ErrInvalidInput, RuleMountpointGiven, "attach needs a mountpoint")
	}
	p := &legacyAttach{s: s, volumeID: volumeID, instance: instanceUUID, host: host, mountpoint: mountpoint, mode: mode}
	st, err := s.read(ctx, volumeID)
	if err != nil {
		return nil, err
	}
	if err := p.attachable(st); err != nil {
		return nil, err
	}
	var out *Attachment
	err = s.locked(ctx, volumeID, func(ctx context.Context, lk volattach.Lock) error {
		var err error
		out, err = p.run(ctx, lk)
		return err
	})
	return out, err
}

// legacyAttach is one Attach call.
type legacyAttach struct {
	s                                    *Service
	volumeID, instance, host, mountpoint string
	mode                                 string

	// Outcome of the first stage's last (committed) attempt.
	existing *Attachment // step 3: already attached
	current  *Attachment // the attachment being attached
	prevMode string      // attached_mode before begin_attach ("" = none)
	failure  error       // steps 5-6
}

func (p *legacyAttach) request(st *state) *Request {
	return &Request{Volume: st.vol, Attachments: st.atts, InstanceUUID: p.instance, Mode: p.mode}
}

// attachable is steps 1-2 (and the API's maintenance check): the guards of
// the attach row.
func (p *legacyAttach) attachable(st *state) error {
	_, err := statusTable.Next(st.vol.Status, EventAttach, p.request(st))
	return err
}

// mine returns the volume's attachment for this instance (or host).
func (p *legacyAttach) mine(st *state) *Attachment {
	for _, a := range st.atts {
		if p.instance != "" && a.InstanceUUID == p.instance || p.instance == "" && a.InstanceUUID == "" && a.AttachedHost == p.host {
			if a.AttachStatus == AttachAttached || a.AttachStatus == AttachAttaching {
				return a
			}
		}
	}
	return nil
}

func (p *legacyAttach) run(ctx context.Context, lk volattach.Lock) (*Attachment, error) {
	s := p.s
	log := s.logger(ctx, "attach", p.volumeID).WithField("instance_uuid", p.instance)
	var hook AttachHook
	st, err := s.apply(ctx, lk, p.volumeID, "attach", func(st *state, c *change) error {
		p.existing, p.current, p.failure = nil, nil, nil
		if err := p.attachable(st); err != nil { // steps 1-2
			return err
		}
		b, err := s.backend(st.vol)
		if err != nil {
			return err
		}
		hook, _ = b.(AttachHook)
		if a := p.mine(st); a != nil && a.AttachStatus == AttachAttached { // step 3
			p.existing = a
			if st.vol.Status == StatusInUse {
				return nil
			}
			if err := c.fireVolume(EventAttach, p.request(st)); err != nil {
				return err
			}
			c.summarize()
			return nil
		} else if a != nil {
			p.current = a // left attaching by an unfinished attempt: resume
		}
		p.prevMode = st.vol.AdminMetadata[MetaAttachedMode]
		if p.current == nil { // step 4: begin_attach
			p.current = &Attachment{
				ID: s.newID(), VolumeID: p.volumeID, InstanceUUID: p.instance, AttachedHost: p.host,
				Mountpoint: p.mountpoint, AttachMode: p.mode, AttachStatus: AttachAttaching,
			}
			c.createAttachment(p.current, AttachEventBeginAttach)
		}
		setMeta(st.vol, MetaAttachedMode, p.mode)
		c.touchVolume()
		if p.instance != "" && !IsUUIDLike(p.instance) { // step 5
			p.failure = newError(ErrInvalidUUID, RuleInstanceUUIDLike, "expected a UUID but received %s", p.instance)
			return p.fail(st, c, p.current, MessageInvalidUUID)
		}
		if st.vol.ReadOnly() && p.mode != ModeRO { // step 6
			p.failure = newError(ErrInvalidVolumeAttachMode, RuleReadonlyNeedsRO, "invalid attaching mode '%s' for volume %s", p.mode, p.volumeID)
			return p.fail(st, c, p.current, MessageAttachReadonly)
		}
		if hook != nil {
			return nil // step 7 runs after begin_attach is committed
		}
		return p.finish(st, c, p.current) // step 8
	})
	if err != nil {
		return nil, err
	}
	if p.existing != nil {
		log.WithField("attachment_id", p.existing.ID).Info("volume already attached to this instance")
		return p.existing, nil
	}
	s.notify(ctx, NotifyAttachStart, st.vol, p.current)
	if p.failure != nil {
		log.WithError(p.failure).Warn("attach refused; attachment in error_attaching")
		return nil, p.failure
	}
	if hook != nil {
		id := p.current.ID
		herr := hook.AttachVolume(ctx, *st.vol, p.instance, p.host, p.mountpoint)
		if herr != nil {
			log.WithError(herr).Error("backend attach hook failed")
		}
		st, err = s.apply(ctx, lk, p.volumeID, "attach", func(st *state, c *change) error {
			a := st.attachment(id)
			if a == nil {
				return newError(ErrVolumeAttachmentNotFound, "", "attachment %s vanished during attach", id)
			}
			if herr != nil {
				return p.fail(st, c, a, MessageAttachFailed)
			}
			return p.finish(st, c, a)
		})
		if err != nil {
			return nil, err
		}
		if herr != nil {
			return nil, &Error{Kind: ErrVolumeBackendAPIException, Rule: RuleAttachHook, Reason: fmt.Sprintf("volume %s: backend attach failed", p.volumeID), Err: herr}
		}
		p.current = st.attachment(id)
	}
	s.notify(ctx, NotifyAttachEnd, st.vol, p.current)
	log.WithField("attachment_id", p.current.ID).Info("attach volume completed")
	return p.current, nil
}

// fail is the failure of steps 5-7: the attachment to error_attaching with
// its message, attached_mode restored.
func (p *legacyAttach) fail(st *state, c *change, a *Attachment, message string) error {
	a.Message = message
	if err := c.fireAttachment(a, AttachEventAttachFailed, p.request(st)); err != nil {
		return err
	}
	if p.prevMode == "" {
		delete(st.vol.AdminMetadata, MetaAttachedMode)
	} else {
		setMeta(st.vol, MetaAttachedMode, p.prevMode)
	}
	c.touchVolume()
	return nil
}

// finish is step 8 (upstream finish_attach / db volume_attached).
func (p *legacyAttach) finish(st *state, c *change, a *Attachment) error {
	req := p.request(st)
	a.InstanceUUID, a.AttachedHost, a.Mountpoint, a.AttachMode = p.instance, p.host, p.mountpoint, p.mode
	a.AttachTime = c.now
	if err := c.fireAttachment(a, AttachEventFinishAttach, req); err != nil {
		return err
	}
	if err := c.fireVolume(EventAttach, req); err != nil {
		return err
	}
	c.summarize()
	return nil
}

// setMeta sets an admin metadata key, creating the map when needed.
func setMeta(v *Volume, key, value string) {
	if v.AdminMetadata == nil {
		v.AdminMetadata = map[string]string{}
	}
	v.AdminMetadata[key] = value
}
