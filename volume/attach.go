package volume

import (
	"context"
	"errors"
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
	MessageAttachFailed = "ATTACH_VOLUME: the storage backend failed to attach the volume"
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
// in this order:
//
//  0. the request (upstream's request schema): mode rw or ro ("" is rw),
//     a mountpoint, an instance or a host, an instance id that is a UUID
//     (InvalidUUID); refused before anything is read;
//  1. the API's checks: a volume in maintenance (InvalidVolume), a
//     read-only volume asked a mode other than ro (InvalidVolumeAttachMode);
//  2. status attaching with a recorded attached_mode other than mode:
//     InvalidVolume ("being attached by different mode");
//  3. an attachment of this volume for this instance (or, without an
//     instance, this host) already attached: the volume is set in-use and
//     that attachment returned (a retry after a timeout, LP#1681543); one
//     left attaching by an attempt that never finished is resumed from
//     step 6;
//  4. status in-use, not multiattach, not migrating: InvalidVolume
//     ("already attached");
//  5. begin_attach: a new attachment in attaching, attached_mode recorded;
//     the error_attaching records of this instance's (or host's) earlier
//     failed attempts are destroyed in the same commit, so failures never
//     pile up;
//  6. the backend's AttachHook, if it has one; a failure: error_attaching
//     with a user-visible message, VolumeBackendAPIException (500);
//  7. finish_attach: the attachment attached (instance, host, mountpoint,
//     mode), the volume in-use and attached.
//
// Steps 0-4 refuse before anything is written (steps 1-4 are the guards of
// the attach row; upstream records error_attaching for a bad instance id or
// a read-only volume only in manager branches its API makes unreachable).
// Steps 5 and 7 are one commit when the backend has no hook; with a hook,
// begin_attach is committed before the hook runs (intent before side
// effect) and finish_attach or the failure after it. Unlike upstream, a
// failed attach restores attached_mode, so a retry in another mode is not
// refused by step 2. Notifications volume.attach.start and
// volume.attach.end surround the work.
//
// Without a hook the attach is record-only: one guarded commit compared on
// the revisions read, without the volume lock (the AttachChange, committed
// alone; a conflict is retried under the lock). Upstream's manager holds
// the volume lock (coordination.synchronized) there; see
// docs/upstream-differences.md. With a hook, steps 5-7 run under the
// volume lock, whose release rides on the last commit.
func (s *Service) Attach(ctx context.Context, volumeID, instanceUUID, host, mountpoint, mode string) (*Attachment, error) {
	mode, err := checkAttachArgs(instanceUUID, host, mountpoint, mode)
	if err != nil {
		return nil, err
	}
	p := &legacyAttach{s: s, volumeID: volumeID, instance: instanceUUID, host: host, mountpoint: mountpoint, mode: mode, composing: true}
	st, err := s.commitGuarded(ctx, volumeID, p.transition())
	if err == nil {
		return p.result(st), nil
	}
	if !errors.Is(err, ErrNotComposable) {
		return nil, err
	}
	// The backend runs an attach hook: begin_attach, the hook and
	// finish_attach under the volume lock.
	p.composing = false
	var out *Attachment
	err = s.locked(ctx, volumeID, func(ctx context.Context, lk volattach.Lock) error {
		var err error
		out, err = p.run(ctx, lk)
		return err
	})
	return out, err
}

// AttachChange is Attach as a Change, for a backend without an attach hook
// (steps 0-5 and 7 as one guarded change): the same checks, refusals,
// records and history; Committed emits the notifications. A volume already
// attached to this instance (step 3) is an Empty change (or one that only
// sets the volume in-use) whose Attachment is that attachment. When the
// backend has an AttachHook the attach has a side effect that must run
// under the volume lock: the error matches ErrNotComposable
// (NotComposableError, rule RuleAttachHook) and the caller uses Attach.
func (s *Service) AttachChange(ctx context.Context, volumeID, instanceUUID, host, mountpoint, mode string) (*Change, error) {
	mode, err := checkAttachArgs(instanceUUID, host, mountpoint, mode)
	if err != nil {
		return nil, err
	}
	p := &legacyAttach{s: s, volumeID: volumeID, instance: instanceUUID, host: host, mountpoint: mountpoint, mode: mode, composing: true}
	return s.compose(ctx, volumeID, p.transition())
}

// checkAttachArgs is step 0: the request's own rules, before anything is
// read. It returns the mode to record.
func checkAttachArgs(instanceUUID, host, mountpoint, mode string) (string, error) {
	mode, err := attachModeArg(mode)
	if err != nil {
		return "", err
	}
	if instanceUUID == "" && host == "" {
		return "", newError(ErrInvalidInput, RuleInstanceOrHost, "attach needs an instance_uuid or a host_name")
	}
	if mountpoint == "" {
		return "", newError(ErrInvalidInput, RuleMountpointGiven, "attach needs a mountpoint")
	}
	if instanceUUID != "" && !IsUUIDLike(instanceUUID) {
		return "", newError(ErrInvalidUUID, RuleInstanceUUIDLike, "expected a UUID but received %s", quoteID(instanceUUID))
	}
	return mode, nil
}

// legacyAttach is one Attach call.
type legacyAttach struct {
	s                                    *Service
	volumeID, instance, host, mountpoint string
	mode                                 string

	// composing: the attach is one guarded change without the lock (no
	// attach hook); build refuses with NotComposableError on a backend
	// with a hook, before writing anything.
	composing bool

	// Outcome of the first stage's last (committed) attempt.
	existing *Attachment // step 3: already attached
	current  *Attachment // the attachment being attached
	prevMode string      // attached_mode before begin_attach ("" = none)
	hook     AttachHook  // the backend's attach hook, if any
}

// transition is the attach as one guarded change (steps 1-5 and 7 in one
// commit), for a backend without an attach hook.
func (p *legacyAttach) transition() transition {
	return transition{op: "attach", build: p.build, done: p.done, attachment: func() *Attachment { return p.result(nil) }}
}

// result is the attachment the attach returns: the one already attached
// (step 3), else the one attached.
func (p *legacyAttach) result(*state) *Attachment {
	if p.existing != nil {
		return p.existing
	}
	return p.current
}

// done is the work after the guarded change committed: the notifications
// around the attach and its log.
func (p *legacyAttach) done(ctx context.Context, st *state) {
	log := p.s.logger(ctx, "attach", p.volumeID).WithField("instance_uuid", p.instance)
	if p.existing != nil {
		log.WithField("attachment_id", p.existing.ID).Info("volume already attached to this instance")
		return
	}
	p.s.notify(ctx, NotifyAttachStart, st.vol, p.current)
	p.s.notify(ctx, NotifyAttachEnd, st.vol, p.current)
	log.WithField("attachment_id", p.current.ID).Info("attach volume completed")
}

func (p *legacyAttach) request(st *state) *Request {
	return &Request{Volume: st.vol, Attachments: st.atts, InstanceUUID: p.instance, Host: p.host, Mode: p.mode}
}

// attachable is steps 1-4 but the return of step 3: the guards of the
// attach row.
func (p *legacyAttach) attachable(st *state) error {
	_, err := statusTable.Next(st.vol.Status, EventAttach, p.request(st))
	return err
}

// mine returns the volume's attachment for this instance (or host),
// attached or attaching.
func (p *legacyAttach) mine(st *state) *Attachment { return p.request(st).ownAttachment() }

// failedBefore returns the error_attaching records of this instance's (or
// host's) earlier attempts.
func (p *legacyAttach) failedBefore(st *state) []*Attachment {
	var out []*Attachment
	for _, a := range st.atts {
		if a.AttachStatus != AttachErrorAttaching {
			continue
		}
		if p.instance != "" && a.InstanceUUID == p.instance || p.instance == "" && a.InstanceUUID == "" && a.AttachedHost == p.host {
			out = append(out, a)
		}
	}
	return out
}

func (p *legacyAttach) run(ctx context.Context, lk volattach.Lock) (*Attachment, error) {
	s := p.s
	log := s.logger(ctx, "attach", p.volumeID).WithField("instance_uuid", p.instance)
	st, err := s.apply(ctx, lk, p.volumeID, "attach", p.build)
	if err != nil {
		return nil, err
	}
	if p.existing != nil {
		log.WithField("attachment_id", p.existing.ID).Info("volume already attached to this instance")
		return p.existing, nil
	}
	s.notify(ctx, NotifyAttachStart, st.vol, p.current)
	if hook := p.hook; hook != nil {
		id := p.current.ID
		herr := hook.AttachVolume(ctx, *st.vol, p.instance, p.host, p.mountpoint)
		if herr != nil {
			log.WithError(herr).Error("backend attach hook failed")
		}
		st, err = s.applyReleasing(ctx, lk, p.volumeID, "attach", func(st *state, c *change) error {
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

// build is steps 1-5 (and 7 without a hook) on a fresh read: the one place
// the legacy attach's rules are applied, locked or not.
func (p *legacyAttach) build(st *state, c *change) error {
	s := p.s
	p.existing, p.current, p.hook = nil, nil, nil
	if err := p.attachable(st); err != nil { // steps 1-4
		return err
	}
	b, err := s.backend(st.vol)
	if err != nil {
		return err
	}
	p.hook, _ = b.(AttachHook)
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
	if p.hook != nil && p.composing {
		return &NotComposableError{VolumeID: p.volumeID, Op: "attach", Rule: RuleAttachHook}
	}
	p.prevMode = st.vol.AdminMetadata[MetaAttachedMode]
	if p.current == nil { // step 5: begin_attach
		for _, old := range p.failedBefore(st) {
			if err := c.fireAttachment(old, AttachEventDestroy, p.request(st)); err != nil {
				return err
			}
		}
		p.current = &Attachment{
			ID: s.newID(), VolumeID: p.volumeID, InstanceUUID: p.instance, AttachedHost: p.host,
			Mountpoint: p.mountpoint, AttachMode: p.mode, AttachStatus: AttachAttaching,
		}
		c.createAttachment(p.current, AttachEventBeginAttach)
	}
	setMeta(st.vol, MetaAttachedMode, p.mode)
	c.touchVolume()
	if p.hook != nil {
		return nil // step 6 runs after begin_attach is committed
	}
	return p.finish(st, c, p.current) // step 7
}

// fail is the failure of step 6: the attachment to error_attaching with its
// message, attached_mode restored.
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

// finish is step 7 (upstream finish_attach / db volume_attached).
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
