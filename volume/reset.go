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
	// MigrationStatus, when not nil, replaces the migration status ("none"
	// or "" clears it).
	MigrationStatus *string
}

// ResetStatus is the admin's reset-state (upstream os-reset_status,
// cinder/api/contrib/admin_actions.py _reset_status): only for an admin
// caller (PolicyNotAuthorized, 403), it sets the status through the table's
// reset_status_<status> row (in-use needs attachments), the summary attach
// status and the migration status, in one commit. With attach status
// detached every attachment is detached (removed) in that commit, and then,
// unlike upstream, which touches no backend and so leaves hosts connected
// to a volume it calls detached, the connections recorded on those
// attachments are terminated and the export removed (failures only logged:
// the reset itself is done). Notifications volume.reset_status.start/.end.
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
		return newError(ErrInvalidInput, RuleResetValid, "volume attach status %s is invalid, valid statuses are attached and detached", r.AttachStatus)
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
		if r.AttachStatus == AttachDetached {
			for _, a := range slices.Clone(st.atts) {
				if err := c.fireAttachment(a, AttachEventReset, req); err != nil {
					return err
				}
				released = append(released, a)
			}
			delete(st.vol.AdminMetadata, MetaAttachedMode)
		}
		if r.MigrationStatus != nil {
			ms := strings.ToLower(*r.MigrationStatus)
			if ms == "none" {
				ms = ""
			}
			st.vol.MigrationStatus = ms
			c.touchVolume()
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
