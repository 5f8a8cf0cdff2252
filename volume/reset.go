package volume

import (
	"context"
	"slices"
	"strings"

	"github.com/volattach/volattach"
)

// RuleResetValid names the refusal of a malformed reset request (upstream's
// request schema: volume_status, volume_attach_status formats).
const RuleResetValid = "reset_request_valid"

// ResetRequest is what an admin resets (upstream os-reset_status body).
type ResetRequest struct {
	// Status is the status to set; empty keeps it. Any of the 22 but
	// deleting, error_deleting and detaching.
	Status Status
	// AttachStatus is the summary attach status to set: empty, attached or
	// detached. detached also detaches every attachment.
	AttachStatus AttachStatus
	// MigrationStatus, when not nil and not empty, replaces the migration
	// status: one of MigrationStatuses, case-insensitive; "none" clears it.
	MigrationStatus *string
}

// MigrationStatuses are the migration statuses reset_status accepts
// (upstream cinder/objects/fields.py VolumeMigrationStatus.ALL).
var MigrationStatuses = []string{"migrating", MigrationError, MigrationSuccess, "completing", "none", "starting"}

// ResetStatus is the admin's reset-state (upstream os-reset_status,
// cinder/api/contrib/admin_actions.py _reset_status): the request is
// validated first (InvalidInput, 400, also for a caller who is not an
// admin, as upstream's schema runs before its policy), then only an admin
// caller may go on (PolicyNotAuthorized, 403). In one commit it sets the
// status through the table's reset_status_<status> row (in-use needs
// attachments), the summary attach status and the migration status; with
// attach status detached it then detaches every attachment, and each
// detach recomputes the volume's status and attach status from the
// attachments left (upstream calls volume_detached once per attachment),
// so the volume ends available unless a migration or upload holds it.
//
// Unlike upstream, which touches no backend and so leaves hosts connected
// to a volume it calls detached, the connections recorded on the detached
// attachments are then terminated and the export removed when nothing uses
// it any more (failures only logged: the reset itself is done). Only
// attachments of the attachments API record a connector: for a legacy
// (os-attach) attachment the export removal is what revokes its host.
// Notifications volume.reset_status.start/.end.
func (s *Service) ResetStatus(ctx context.Context, caller Caller, volumeID string, r ResetRequest) error {
	if r.Status == "" && r.AttachStatus == "" && r.MigrationStatus == nil {
		return newError(ErrInvalidInput, RuleResetValid, "os-reset_status needs a status, attach_status or migration_status")
	}
	if r.Status != "" {
		if _, err := statusTable.ParseState(strings.ToLower(string(r.Status))); err != nil {
			return &Error{Kind: ErrInvalidInput, Rule: RuleResetValid, Reason: "volume status " + string(r.Status) + " is invalid", Err: err}
		}
		r.Status = Status(strings.ToLower(string(r.Status)))
	}
	r.AttachStatus = AttachStatus(strings.ToLower(string(r.AttachStatus)))
	if r.AttachStatus != "" && r.AttachStatus != AttachAttached && r.AttachStatus != AttachDetached {
		return newError(ErrInvalidInput, RuleResetValid, "volume attach status %s is invalid, valid statuses are attached and detached", quoteID(string(r.AttachStatus)))
	}
	var migration *string
	if r.MigrationStatus != nil && *r.MigrationStatus != "" {
		ms := strings.ToLower(*r.MigrationStatus)
		if !slices.Contains(MigrationStatuses, ms) {
			return newError(ErrInvalidInput, RuleResetValid, "volume migration status %s is invalid, valid statuses are %s", quoteID(*r.MigrationStatus), strings.Join(MigrationStatuses, ", "))
		}
		if ms == "none" {
			ms = ""
		}
		migration = &ms
	}
	var released []*Attachment
	build := func(st *state, c *change) error {
		released = nil
		req := &Request{Volume: st.vol, Attachments: st.atts, Caller: caller}
		if err := guardCallerIsAdmin.Check(req); err != nil {
			return err
		}
		if r.Status != "" {
			if err := c.fireVolume(ResetEvent(r.Status), req); err != nil {
				return err
			}
		}
		if r.AttachStatus != "" {
			st.vol.AttachStatus = r.AttachStatus
			c.touchVolume()
		}
		if migration != nil {
			st.vol.MigrationStatus = *migration
			c.touchVolume()
		}
		if r.AttachStatus == AttachDetached {
			for _, a := range slices.Clone(st.atts) {
				if err := c.fireAttachment(a, AttachEventReset, req); err != nil {
					return err
				}
				released = append(released, a)
				if err := resetDetached(c, caller); err != nil {
					return err
				}
			}
			c.dropAttachedMode()
		}
		return nil
	}
	if _, err := s.dryRun(ctx, volumeID, "reset_status", build); err != nil {
		return err
	}
	log := s.logger(ctx, "reset_status", volumeID)
	return s.locked(ctx, volumeID, func(ctx context.Context, lk volattach.Lock) error {
		st, err := s.read(ctx, volumeID)
		if err != nil {
			return err
		}
		s.notify(ctx, NotifyResetStatusStart, st.vol, nil)
		st, err = s.apply(ctx, lk, volumeID, "reset_status", build)
		if err != nil {
			return err
		}
		log.WithField("status", st.vol.Status).Warn("volume status reset by an admin")
		if len(released) > 0 {
			s.releaseAfterReset(ctx, st, released)
		}
		s.notify(ctx, NotifyResetStatusEnd, st.vol, nil)
		return nil
	})
}

// resetDetached is upstream volume_detached after one attachment of a
// reset: the volume's attach status and status become what the
// attachments left derive (DeriveStatus, which holds the status during a
// migration or upload), the status through the reset_status row of the
// derived status: it is the admin's reset that sets it, from whatever
// status the reset chose.
func resetDetached(c *change, caller Caller) error {
	v := c.st.vol
	req := &Request{Volume: v, Attachments: c.st.atts, Caller: caller}
	status, attach := req.derived()
	if v.AttachStatus != attach {
		v.AttachStatus = attach
		c.touchVolume()
	}
	if status == v.Status {
		return nil
	}
	return c.fireVolume(ResetEvent(status), req)
}

// releaseAfterReset terminates the connections of attachments a reset
// detached and removes the export when nothing uses the volume any more.
func (s *Service) releaseAfterReset(ctx context.Context, st *state, released []*Attachment) {
	log := s.logger(ctx, "reset_status", st.vol.ID)
	b, err := s.backend(st.vol)
	if err != nil {
		log.WithError(err).Warn("cannot release the connections of the detached attachments")
		return
	}
	for _, a := range released {
		if a.Connector == nil {
			continue
		}
		if err := b.TerminateConnection(ctx, *st.vol, *a.Connector); err != nil {
			log.WithError(err).WithField("attachment_id", a.ID).Warn("terminate connection after reset failed")
		}
	}
	if !exportInUse(st, nil) {
		if err := b.RemoveExport(ctx, *st.vol); err != nil {
			log.WithError(err).Warn("remove export after reset failed")
		}
	}
}
