package volume

import (
	"github.com/volattach/volattach/fsm"
)

// Guard is a named rule of the volume tables over a Request.
type Guard = fsm.Guard[*Request]

// Guard names: the rules refusals name. Each guard below carries a one-line
// comment naming the upstream rule it mirrors.
const (
	RuleMultiattach          = "volume_multiattach"
	RuleAttachStatusAttached = "volume_attach_status_attached"
	RuleNotMigrating         = "volume_not_migrating"
	RuleNotMaintenance       = "volume_not_in_maintenance"
	RuleAttachModeMatches    = "attach_mode_matches_reservation"
	RuleNotAlreadyAttached   = "volume_not_already_attached"
	RuleInstanceAttached     = "instance_already_has_attachment"
	RuleNoDuplicateConnector = "no_duplicate_connector"
	RuleNotAttached          = "volume_not_attached"
	RuleNoAttachmentInUse    = "no_attachment_in_use"
	RuleCallerIsAdmin        = "caller_is_admin"
	RuleHasAttachments       = "volume_has_attachments"
	RuleDeletionAllowed      = "attachment_deletion_allowed"
	// RuleDerivedPrefix starts the names of the derived-status alternatives' guards,
	// "derived_status_is_<status>".
	RuleDerivedPrefix = "derived_status_is_"
)

// guardMultiattach: cinder/volume/api.py reserve_volume and
// _attachment_reserve: an in-use volume may be reserved only when multiattach.
var guardMultiattach = Guard{Name: RuleMultiattach, Check: func(r *Request) error {
	if r.Volume.Multiattach {
		return nil
	}
	return newError(ErrInvalidVolume, RuleMultiattach,
		"volume %s status must be available to reserve, but the status is %s and the volume is not multiattach", r.Volume.ID, r.Volume.Status)
}}

// guardAttachStatusAttached: cinder/volume/api.py begin_detaching: expected
// attach_status attached.
var guardAttachStatusAttached = Guard{Name: RuleAttachStatusAttached, Check: func(r *Request) error {
	if r.Volume.AttachStatus == AttachAttached {
		return nil
	}
	return newError(ErrInvalidVolume, RuleAttachStatusAttached,
		"unable to detach volume %s: status must be in-use and attach_status must be attached to detach, but attach_status is %q", r.Volume.ID, r.Volume.AttachStatus)
}}

// guardNotMigrating: cinder/volume/api.py begin_detaching and delete:
// migration_status must be one of AVAILABLE_MIGRATION_STATUS.
var guardNotMigrating = Guard{Name: RuleNotMigrating, Check: func(r *Request) error {
	if !r.Volume.Migrating() {
		return nil
	}
	return newError(ErrInvalidVolume, RuleNotMigrating,
		"volume %s is migrating (migration_status %s)", r.Volume.ID, r.Volume.MigrationStatus)
}}

// guardNotMaintenance: cinder/volume/api.py attach, detach and
// initialize_connection: refused while the volume is in maintenance.
var guardNotMaintenance = Guard{Name: RuleNotMaintenance, Check: func(r *Request) error {
	if r.Volume.Status != StatusMaintenance {
		return nil
	}
	return newError(ErrInvalidVolume, RuleNotMaintenance,
		"volume %s is in maintenance mode", r.Volume.ID)
}}

// guardAttachModeMatches: cinder/volume/manager.py attach_volume (step 1): a
// volume attaching with a recorded attached_mode refuses another mode.
var guardAttachModeMatches = Guard{Name: RuleAttachModeMatches, Check: func(r *Request) error {
	recorded := r.Volume.AdminMetadata[MetaAttachedMode]
	if r.Volume.Status != StatusAttaching || recorded == "" || recorded == r.Mode {
		return nil
	}
	return newError(ErrInvalidVolume, RuleAttachModeMatches,
		"volume %s is being attached by different mode (%s, asked %s)", r.Volume.ID, recorded, r.Mode)
}}

// guardReadonlyNeedsRO: cinder/volume/api.py attach: a read-only volume
// (admin metadata readonly == "True") is attached in mode ro only
// (InvalidVolumeAttachMode, 400), checked in the API before the manager, so
// before the mode-mismatch check and before anything is written.
var guardReadonlyNeedsRO = Guard{Name: RuleReadonlyNeedsRO, Check: func(r *Request) error {
	if !r.Volume.ReadOnly() || r.Mode == ModeRO {
		return nil
	}
	return newError(ErrInvalidVolumeAttachMode, RuleReadonlyNeedsRO,
		"invalid attaching mode '%s' for volume %s", r.Mode, r.Volume.ID)
}}

// guardNotAlreadyAttached: cinder/volume/manager.py attach_volume (step 2):
// in-use, not multiattach and not migrating means already attached, unless
// this instance (or host) already has its attachment, which upstream
// returns before this check (LP#1681543: a retry after a timeout).
var guardNotAlreadyAttached = Guard{Name: RuleNotAlreadyAttached, Check: func(r *Request) error {
	if r.Volume.Status != StatusInUse || r.Volume.Multiattach || r.Volume.Migrating() || r.ownAttachment() != nil {
		return nil
	}
	return newError(ErrInvalidVolume, RuleNotAlreadyAttached,
		"volume %s is already attached and multiple attachments are not enabled", r.Volume.ID)
}}

// guardInstanceAttached: cinder/volume/api.py _attachment_reserve: an
// in-use or reserved volume takes another attachment for an instance that
// already has one (live migration, LP 1694530).
var guardInstanceAttached = Guard{Name: RuleInstanceAttached, Check: func(r *Request) error {
	if r.InstanceUUID != "" {
		for _, a := range r.Attachments {
			if a.InstanceUUID == r.InstanceUUID {
				return nil
			}
		}
	}
	return newError(ErrInvalidVolume, RuleInstanceAttached,
		"volume %s status must be available or downloading to reserve, but the current status is %s", r.Volume.ID, r.Volume.Status)
}}

// guardNoDuplicateConnector: cinder/volume/api.py attachment_update: a
// volume that is not multiattach, with more than one attachment, of which
// any (the one being updated included) holds connection_info, takes no
// other connection ("duplicate connectors", 409).
var guardNoDuplicateConnector = Guard{Name: RuleNoDuplicateConnector, Check: func(r *Request) error {
	if r.Volume.Multiattach || len(r.Attachments) < 2 {
		return nil
	}
	for _, a := range r.Attachments {
		if a.ConnectionInfo != nil {
			return newError(ErrResourceConflict, RuleNoDuplicateConnector,
				"duplicate connectors detected on volume %s", r.Volume.ID)
		}
	}
	return nil
}}

// guardNotAttached: cinder/volume/api.py delete: attach_status must not be
// attached.
var guardNotAttached = Guard{Name: RuleNotAttached, Check: func(r *Request) error {
	if r.Volume.AttachStatus != AttachAttached {
		return nil
	}
	return newError(ErrInvalidVolume, RuleNotAttached,
		"volume %s must not be attached to be deleted", r.Volume.ID)
}}

// guardNoAttachmentInUse: cinder/volume/api.py delete refuses an attached
// volume; we also refuse reserved, attaching and error_detaching records,
// whose host may hold or be about to hold the volume (error_attaching ones
// are destroyed with the volume).
var guardNoAttachmentInUse = Guard{Name: RuleNoAttachmentInUse, Check: func(r *Request) error {
	for _, a := range r.Attachments {
		switch a.AttachStatus {
		case AttachReserved, AttachAttaching, AttachAttached, AttachErrorDetaching:
			return newError(ErrInvalidVolume, RuleNoAttachmentInUse,
				"volume %s has attachment %s in %s", r.Volume.ID, a.ID, a.AttachStatus)
		}
	}
	return nil
}}

// guardCallerIsAdmin: cinder/api/contrib/admin_actions.py: reset_status and
// force_detach are admin actions (policy volume_admin_actions, 403).
var guardCallerIsAdmin = Guard{Name: RuleCallerIsAdmin, Check: func(r *Request) error {
	if r.Caller.Admin {
		return nil
	}
	return newError(ErrPolicyNotAuthorized, RuleCallerIsAdmin,
		"policy doesn't allow this admin action to be performed")
}}

// guardHasAttachments: cinder/api/contrib/admin_actions.py _reset_status:
// cannot reset-state to in-use when the volume has no attachments.
var guardHasAttachments = Guard{Name: RuleHasAttachments, Check: func(r *Request) error {
	if len(r.Attachments) > 0 {
		return nil
	}
	return newError(ErrInvalidInput, RuleHasAttachments,
		"cannot reset-state to in-use because volume %s does not have any attachments", r.Volume.ID)
}}

// guardDerived returns the guard of one alternative of a derived-status row
// (derivedTargets): cinder/db/api.py
// volume_detached: the status after a detach is the one the remaining
// attachments derive (DeriveStatus), never stored blindly.
func guardDerived(target Status) Guard {
	name := RuleDerivedPrefix + string(target)
	return Guard{Name: name, Check: func(r *Request) error {
		if got, _ := r.derived(); got == target {
			return nil
		}
		got, _ := r.derived()
		return newError(ErrInvalidVolume, name,
			"the attachments of volume %s derive status %s, not %s", r.Volume.ID, got, target)
	}}
}

// guardDeletionAllowed: cinder/volume/api.py attachment_deletion_allowed
// (bug 2004555), on os-detach, os-terminate_connection, os-force_detach
// and attachment_delete: when the Service has a compute side to ask, a
// caller that is not the compute service may not remove an attachment
// whose instance still uses it (ConflictNovaUsingAttachment, 409), nor one
// it cannot name (an unknown attachment id, or none named while the volume
// has several). Removing an attachment that no instance's host is
// connected to, or that the compute side no longer uses, is allowed.
var guardDeletionAllowed = Guard{Name: RuleDeletionAllowed, Check: func(r *Request) error {
	if !r.ComputeGuarded || r.Caller.Service {
		return nil
	}
	a, known := r.deletionTarget()
	switch {
	case known && a == nil:
		return nil
	case a != nil && (!connectedToInstance(a) || !r.ComputeUses):
		return nil
	}
	instance := ""
	if a != nil {
		instance = a.InstanceUUID
	}
	return newError(ErrConflictNovaUsingAttachment, RuleDeletionAllowed,
		"detach volume %s from instance %s using the compute API: the attachment is in use and only the compute service may remove it", r.Volume.ID, instance)
}}
