package volume

import (
	"context"

	"github.com/volattach/volattach"
)

// RuleAttachmentChosen names the refusal of a detach without an attachment
// id on a volume with several attachments.
const RuleAttachmentChosen = "attachment_id_given"

// detachKind is what differs between Detach and ForceDetach.
type detachKind struct {
	op          string
	event       Event
	attachEvent AttachEvent
	caller      Caller
	force       bool
	connector   *Connector
}

// Detach records that a volume was detached (upstream os-detach:
// cinder/volume/api.py detach, manager.py detach_volume), under the volume's
// lock, the same lock Attach takes (upstream uses another name for detach,
// so the two interleave there). A volume in maintenance is refused
// (InvalidVolume, 400).
//
// attachmentID may be empty when the volume has exactly one attachment;
// with several it is InvalidVolume. An attachment that does not exist (any
// more) makes the detach an idempotent retry: the volume's status is
// recomputed and nil returned.
//
// The backend's DetachHook runs (a failure puts the attachment in
// error_detaching, VolumeBackendAPIException 500, as upstream's driver
// failure does), then the export is removed unless another attachment
// still uses it (upstream removes it unconditionally, cutting off the other
// attachments of a multiattach volume); a failure there is a
// VolumeBackendAPIException (500, upstream RemoveExportException) that
// changes nothing, so a retry works. Then one commit removes the attachment
// (detached), drops the recorded attached_mode (upstream finish_detach) and
// sets the volume's status to the one its remaining attachments derive
// (DeriveStatus). Notifications volume.detach.start and volume.detach.end
// surround the work.
func (s *Service) Detach(ctx context.Context, volumeID, attachmentID string) error {
	return s.detach(ctx, volumeID, attachmentID, detachKind{op: "detach", event: EventDetach, attachEvent: AttachEventDetach})
}

// ForceDetach is the admin's detach (upstream os-force_detach): only for an
// admin caller (PolicyNotAuthorized, 403, otherwise). It always terminates
// the connection first (upstream _force_detach calls terminate_connection
// whatever it was given): of connector, or when nil of the connector
// recorded on the attachment; a failure is a 500 and changes nothing. With
// neither (the legacy flow records no connector on the attachment, and the
// built-in backends cannot revoke a host they are not told), a backend that
// implements ConnectionsRevoker revokes every host, as upstream's drivers do
// for a None connector; any other backend's hosts lose access when the
// export is removed, which happens unless another attachment still uses
// it. Then it detaches exactly as Detach does: a failing step is a 500 and
// the attachment is kept.
func (s *Service) ForceDetach(ctx context.Context, caller Caller, volumeID, attachmentID string, connector *Connector) error {
	if connector != nil {
		if err := connector.Validate(); err != nil {
			return err
		}
	}
	return s.detach(ctx, volumeID, attachmentID, detachKind{
		op: "force_detach", event: EventForceDetach, attachEvent: AttachEventForceDetach,
		caller: caller, force: true, connector: connector,
	})
}

// pickAttachment chooses the attachment a detach is about: by id, or the
// only one. nil means there is none to detach.
func pickAttachment(st *state, id string) (*Attachment, error) {
	if id != "" {
		return st.attachment(id), nil
	}
	switch len(st.atts) {
	case 0:
		return nil, nil
	case 1:
		return st.atts[0], nil
	}
	return nil, newError(ErrInvalidVolume, RuleAttachmentChosen, "detach volume %s failed: more than one attachment, but no attachment_id provided", st.vol.ID)
}

// detachRun is one Detach, ForceDetach or PrepareDetach call: its
// checks, its side effects under the volume lock, and its last commit, in
// one place for the three.
type detachRun struct {
	s                      *Service
	volumeID, attachmentID string
	k                      detachKind
	target                 *Attachment // the attachment detached, once the side effects ran
}

func (s *Service) newDetach(ctx context.Context, volumeID, attachmentID string, k detachKind) *detachRun {
	k.caller = s.callerOf(ctx, k.caller)
	return &detachRun{s: s, volumeID: volumeID, attachmentID: attachmentID, k: k}
}

// check is the detach's guards on st; it returns the attachment to detach,
// or nil when there is none.
func (d *detachRun) check(ctx context.Context, st *state) (*Attachment, error) {
	k := d.k
	req := &Request{Volume: st.vol, Attachments: st.atts, Caller: k.caller}
	if d.attachmentID != "" {
		req.Attachment = st.attachment(d.attachmentID)
	}
	if err := d.s.judgeDeletion(ctx, req, d.attachmentID); err != nil {
		return nil, err
	}
	if k.force {
		// upstream _force_detach calls terminate_connection first,
		// whose attachment_deletion_allowed names no attachment.
		term := *req
		term.Attachment, term.AttachmentID = nil, ""
		if err := guardDeletionAllowed.Check(&term); err != nil && guardCallerIsAdmin.Check(req) == nil {
			return nil, err
		}
	}
	if _, err := statusTable.Next(st.vol.Status, k.event, req); err != nil {
		return nil, err
	}
	req.Attachment = nil
	a, err := pickAttachment(st, d.attachmentID)
	if err != nil || a == nil {
		return nil, err
	}
	req.Attachment = a
	if _, err := attachTable.Next(a.AttachStatus, k.attachEvent, req); err != nil {
		return nil, err
	}
	return a, nil
}

// settle is the detach of nothing: the volume's status recomputed.
func (d *detachRun) settle(ctx context.Context) buildFunc {
	return func(st *state, c *change) error {
		if a, err := d.check(ctx, st); err != nil {
			return err
		} else if a != nil {
			return newError(ErrResourceConflict, "", "volume %s gained attachment %s during the detach; retry", st.vol.ID, a.ID)
		}
		req := &Request{Volume: st.vol, Attachments: st.atts, Caller: d.k.caller}
		if derived, attach := req.derived(); derived == st.vol.Status && attach == st.vol.AttachStatus {
			return nil
		}
		return c.settle(d.k.event, d.k.caller)
	}
}

// finish is the detach's last commit, after its side effects: the
// attachment detached, attached_mode dropped, the status derived.
func (d *detachRun) finish(ctx context.Context) buildFunc {
	return func(st *state, c *change) error {
		a := st.attachment(d.target.ID)
		if a == nil {
			return d.settle(ctx)(st, c)
		}
		req := &Request{Volume: st.vol, Attachments: st.atts, Attachment: a, Caller: d.k.caller}
		if err := c.fireAttachment(a, d.k.attachEvent, req); err != nil {
			return err
		}
		c.dropAttachedMode()
		return c.settle(d.k.event, d.k.caller)
	}
}

// done is the work after the last commit: notification and log.
func (d *detachRun) done(ctx context.Context, st *state) {
	if d.target == nil {
		return
	}
	d.s.notify(ctx, NotifyDetachEnd, st.vol, d.target)
	d.s.logger(ctx, d.k.op, d.volumeID).WithField("attachment_id", d.target.ID).Info("detach volume completed")
}

// prepare runs the detach's side effects under lk, on a fresh read: the
// backend's detach hook (a failure commits error_detaching, releasing lk,
// and is returned), then the export's removal unless another attachment
// uses it. It returns the build of the last commit (finish, or settle
// when there is nothing to detach).
func (d *detachRun) prepare(ctx context.Context, lk volattach.Lock) (buildFunc, error) {
	s, k, volumeID := d.s, d.k, d.volumeID
	log := s.logger(ctx, k.op, volumeID)
	st, err := s.read(ctx, volumeID)
	if err != nil {
		return nil, err
	}
	target, err := d.check(ctx, st)
	if err != nil {
		return nil, err
	}
	if target == nil {
		log.Info("volume detach called, but volume not attached")
		return d.settle(ctx), nil
	}
	log = log.WithField("attachment_id", target.ID)
	b, err := s.backend(st.vol)
	if err != nil {
		return nil, err
	}
	s.notify(ctx, NotifyDetachStart, st.vol, target)
	if k.force {
		if err := s.forceTerminate(ctx, b, st.vol, target, k.connector); err != nil {
			log.WithError(err).Error("unable to terminate volume connection from backend")
			return nil, backendError(err, "volume %s: unable to terminate volume connection from backend", volumeID)
		}
	}
	if herr := runDetachHook(ctx, b, st, target); herr != nil {
		log.WithError(herr).Error("detach failed on the backend; attachment in error_detaching")
		if _, err := s.applyReleasing(ctx, lk, volumeID, k.op, func(st *state, c *change) error {
			a := st.attachment(target.ID)
			if a == nil {
				return nil
			}
			return c.fireAttachment(a, AttachEventDetachFailed, &Request{Volume: st.vol, Attachments: st.atts, Attachment: a})
		}); err != nil {
			return nil, err
		}
		return nil, backendError(herr, "volume %s: detach failed on the backend", volumeID)
	}
	if !exportInUse(st, target) {
		if err := b.RemoveExport(ctx, *st.vol); err != nil {
			// upstream manager.detach_volume: RemoveExportException,
			// the attachment untouched.
			log.WithError(err).Error("detach volume failed, due to remove-export failure")
			return nil, backendError(err, "volume %s: detach failed: remove export", volumeID)
		}
	}
	d.target = target
	return d.finish(ctx), nil
}

// PrepareDetach is Detach as a Change for the caller's own transaction.
// The refusals are Detach's, answered before anything is done. Then, under
// the volume lock, it runs Detach's side effects (the backend's detach
// hook, whose failure commits error_detaching and is returned as Detach
// returns it; the export's removal unless another attachment uses it) and
// returns the change of Detach's last commit with the lock still held:
// its Txn carries the lock's fence and releases the lock (Txn.Fences,
// Txn.Releases), so the caller's commit is fenced by the volume lock and
// ends it. The caller must then either commit the Txn and call Committed
// (notification volume.detach.end), or call Abandon (the lock is released,
// nothing recorded; the side effects already done are harmless to redo).
// A detach of a volume with nothing to detach is a Change without lock
// that settles the status, as Detach's.
func (s *Service) PrepareDetach(ctx context.Context, volumeID, attachmentID string) (*Change, error) {
	k := detachKind{op: "detach", event: EventDetach, attachEvent: AttachEventDetach}
	d := s.newDetach(ctx, volumeID, attachmentID, k)
	st, err := s.read(ctx, volumeID)
	if err != nil {
		return nil, err
	}
	if target, err := d.check(ctx, st); err != nil {
		return nil, err
	} else if target == nil {
		return s.compose(ctx, volumeID, transition{op: k.op, build: d.settle(ctx)})
	}
	var built *Change
	lk, err := s.holding(ctx, volumeID, func(ctx context.Context, lk volattach.Lock) error {
		last, err := d.prepare(ctx, lk)
		if err != nil {
			return err
		}
		built, err = s.compose(ctx, volumeID, transition{op: k.op, build: last, done: d.done})
		return err
	})
	if err != nil {
		return nil, err
	}
	ch := &Change{Txn: built.Txn, after: built.after, lock: lk, unlockTimeout: s.unlockTimeout}
	ch.Attachment = d.target
	for _, r := range ch.Txn.Deletes {
		if a, ok := r.(*Attachment); ok && d.target != nil && a.ID == d.target.ID {
			ch.Attachment = a // as the commit leaves it: detached
		}
	}
	if !ch.Empty() {
		ch.Txn.Fences = []volattach.Fence{lk.Fence()}
		ch.Txn.Releases = []volattach.Lock{lk}
	}
	return ch, nil
}

func (s *Service) detach(ctx context.Context, volumeID, attachmentID string, k detachKind) error {
	d := s.newDetach(ctx, volumeID, attachmentID, k)
	st, err := s.read(ctx, volumeID)
	if err != nil {
		return err
	}
	if target, err := d.check(ctx, st); err != nil {
		return err
	} else if target == nil {
		// Nothing to detach: only the status may need settling, which a
		// dry run answers without a lock when it is already right.
		_, err := s.transact(ctx, volumeID, k.op, d.settle(ctx))
		return err
	}
	return s.locked(ctx, volumeID, func(ctx context.Context, lk volattach.Lock) error {
		last, err := d.prepare(ctx, lk)
		if err != nil {
			return err
		}
		st, err := s.applyReleasing(ctx, lk, volumeID, k.op, last)
		if err != nil {
			return err
		}
		d.done(ctx, st)
		return nil
	})
}

// forceConnector is the connector a forced detach terminates: the one given,
// else the one recorded on the attachment, else none.
func forceConnector(given *Connector, a *Attachment) *Connector {
	if given != nil {
		return given
	}
	return a.Connector
}

// forceTerminate is a forced detach's terminate_connection: of the
// connector given or recorded, else of every host when the backend can
// revoke them all (ConnectionsRevoker); else there is no host to name, and
// the export removal that follows revokes them.
func (s *Service) forceTerminate(ctx context.Context, b Backend, v *Volume, a *Attachment, given *Connector) error {
	if c := forceConnector(given, a); c != nil {
		return b.TerminateConnection(ctx, *v, *c)
	}
	if r, ok := b.(ConnectionsRevoker); ok {
		return r.TerminateAllConnections(ctx, *v)
	}
	s.logger(ctx, "force_detach", v.ID).WithField("attachment_id", a.ID).
		Warn("no connector given or recorded and the backend cannot revoke every host; the export removal revokes them unless another attachment still uses it")
	return nil
}

// runDetachHook runs the backend's detach hook, if it has one.
func runDetachHook(ctx context.Context, b Backend, st *state, a *Attachment) error {
	if hook, ok := b.(DetachHook); ok {
		return hook.DetachVolume(ctx, *st.vol, *a)
	}
	return nil
}

// releaseStorage runs the backend's detach hook and removes the export
// unless another attachment still uses it.
func (s *Service) releaseStorage(ctx context.Context, b Backend, st *state, a *Attachment) error {
	if err := runDetachHook(ctx, b, st, a); err != nil {
		return err
	}
	if exportInUse(st, a) {
		return nil
	}
	return b.RemoveExport(ctx, *st.vol)
}
