package volume

import (
	"slices"
	"strings"

	"github.com/volattach/volattach/fsm"
)

// Event is an event of the volume.status table.
type Event string

// The events of the volume.status table. Each names the upstream action
// (cinder/volume/api.py, cinder/volume/manager.py, the attachments API) whose
// rows carry it.
const (
	// EventCreate is the creation of a volume record in creating: not a row
	// (no from-state), only the history entry of the first commit.
	EventCreate      Event = "create"
	EventCreateDone  Event = "create_done"
	EventCreateError Event = "create_failed"
	EventDelete      Event = "delete"
	// EventDeleteDone removes the record: its row leads to StatusDeleted,
	// the removed pseudo-status, and the commit that fires it deletes the
	// volume from the store (see the volume.status table's comment).
	EventDeleteDone  Event = "delete_done"
	EventDeleteError Event = "delete_failed"

	EventReserve              Event = "reserve"
	EventUnreserve            Event = "unreserve"
	EventBeginDetaching       Event = "begin_detaching"
	EventRollDetaching        Event = "roll_detaching"
	EventInitializeConnection Event = "initialize_connection"
	EventTerminateConnection  Event = "terminate_connection"
	EventAttach               Event = "attach"
	EventDetach               Event = "detach"
	EventForceDetach          Event = "force_detach"

	EventAttachmentCreate             Event = "attachment_create"
	EventAttachmentCreateSameInstance Event = "attachment_create_same_instance"
	EventAttachmentUpdate             Event = "attachment_update"
	// EventAttachmentConnect is the manager's attachment_update alone, as
	// attachment_create with a connector calls it: none of the API's
	// checks (live migration attaches the destination host this way).
	EventAttachmentConnect  Event = "attachment_connect"
	EventAttachmentComplete Event = "attachment_complete"
	EventAttachmentDelete   Event = "attachment_delete"

	// EventRecomputeStatus is a reconciler's repair of a volume no
	// operation is working on: the status its attachments derive.
	EventRecomputeStatus Event = "recompute_status"
)

// StatusDeleted is the removed pseudo-status of the volume.status table:
// delete_done leads to it and the commit removes the record, so it is never
// stored (upstream soft-deletes the row with status "deleted", a value
// outside VolumeStatus).
const StatusDeleted Status = "deleted"

// resetPrefix starts the admin reset events, one per target status.
const resetPrefix = "reset_status_"

// ResetEvent is the admin reset_status event that sets status s (upstream
// os-reset_status). There is one row per target status, so the table says
// exactly which statuses an admin may set.
func ResetEvent(s Status) Event { return Event(resetPrefix + string(s)) }

// StatusTable is the volume.status table (the subject is *Request).
type StatusTable = fsm.Table[Status, Event, *Request]

// isErrorStatus reports whether s is one of the error statuses ("error" in
// the name, the test upstream's attachments API applies).
func isErrorStatus(s Status) bool { return strings.Contains(string(s), "error") }

// statusesExcept returns Statuses without the given ones, in upstream order.
func statusesExcept(skip ...Status) []Status {
	out := make([]Status, 0, len(Statuses))
	for _, s := range Statuses {
		if !slices.Contains(skip, s) {
			out = append(out, s)
		}
	}
	return out
}

// liveStatuses are the statuses in which attach-side actions have rows: all
// but creating and deleting. Upstream checks nothing there and so races an
// attach against a volume's creation or deletion; a volume whose storage
// does not exist yet or is being removed takes no connection here.
var liveStatuses = statusesExcept(StatusCreating, StatusDeleting)

// The named state sets of the volume.status table: its any-state rows apply
// from every status of one, and the diagrams draw each such row once.
const (
	setLive        = "live"          // liveStatuses
	setLiveNoError = "live_no_error" // nonErrorLive()
	setAll         = "any"           // Statuses
)

// resetForbidden are the statuses reset_status may not set (upstream
// admin_actions.py _reset_status refuses deleting, and means to refuse
// error_deleting and detaching too: a missing comma there turns the two into
// one string, which we do not copy).
var resetForbidden = []Status{StatusDeleting, StatusErrorDeleting, StatusDetaching}

// statusTable is the volume.status table. A deleted volume has no status:
// upstream soft-deletes the row and writes status "deleted", a value outside
// VolumeStatus; here delete_done leads to the removed pseudo-status deleted
// (StatusDeleted) and its commit removes the record from the store, so no
// status outside upstream's 22 is stored and the history keeps the audit
// trail.
//
// Every user action writes one transition per record it changes: a row
// whose target is the status the remaining attachments derive (unreserve,
// detach, force_detach, attachment_delete; upstream volume_detached) has one
// alternative per status the derivation yields, each chosen by its
// derived_status_is_* guard, which calls DeriveStatus.
var statusTable = fsm.New("volume.status", fsm.Definition[Status, Event, *Request]{
	States:  Statuses,
	Initial: StatusCreating,
	Removed: StatusDeleted,
	Sets: []fsm.StateSet[Status]{
		{Name: setLive, States: liveStatuses},
		{Name: setLiveNoError, States: nonErrorLive()},
		{Name: setAll, States: Statuses},
	},
	Rows:   statusRows(),
	Refuse: refuseStatus,
})

func statusRows() []fsm.Row[Status, Event, *Request] {
	type row = fsm.Row[Status, Event, *Request]
	rows := []row{
		// The attach lifecycle first.
		// cinder/volume/api.py reserve_volume: available, or in-use when multiattach.
		{Event: EventReserve, From: []Status{StatusAvailable}, To: StatusAttaching},
		{Event: EventReserve, From: []Status{StatusInUse}, To: StatusAttaching, Guards: []Guard{guardMultiattach}},
		// cinder/volume/api.py unreserve_volume: only from attaching (no-op
		// otherwise), to the status the attachments derive.
		{Event: EventUnreserve, From: []Status{StatusAttaching},
			Alternatives: derivedTargets(StatusAvailable, StatusInUse, StatusReserved)},
		// cinder/volume/api.py begin_detaching: in-use, attached, not migrating.
		{Event: EventBeginDetaching, From: []Status{StatusInUse}, To: StatusDetaching,
			Guards: []Guard{guardAttachStatusAttached, guardNotMigrating}},
		// cinder/volume/api.py roll_detaching: detaching back to in-use (no-op otherwise).
		{Event: EventRollDetaching, From: []Status{StatusDetaching}, To: StatusInUse},
		// cinder/volume/api.py _attachment_reserve: available or downloading,
		// or in-use when multiattach, become reserved.
		{Event: EventAttachmentCreate, From: []Status{StatusAvailable, StatusDownloading}, To: StatusReserved},
		{Event: EventAttachmentCreate, From: []Status{StatusInUse}, To: StatusReserved, Guards: []Guard{guardMultiattach}},
		// cinder/volume/api.py _attachment_reserve: same-instance override
		// (live migration): the attachment is created, the status unchanged.
		{Event: EventAttachmentCreateSameInstance, From: []Status{StatusInUse, StatusReserved}, Guards: []Guard{guardInstanceAttached}},

		// The attach-side rows that apply from every live status.
		// cinder/volume/api.py attach (maintenance, read-only) and
		// manager.py attach_volume steps 1-3; fired at step 3 (idempotent
		// retry) or step 6 (finish_attach).
		{Event: EventAttach, Set: setLive, To: StatusInUse,
			Guards: []Guard{guardNotMaintenance, guardReadonlyNeedsRO, guardAttachModeMatches, guardNotAlreadyAttached}},
		// cinder/volume/api.py detach (attachment_deletion_allowed, not in
		// maintenance) and cinder/db/api.py volume_detached: the status the
		// remaining attachments derive.
		{Event: EventDetach, Set: setLive, Guards: []Guard{guardDeletionAllowed, guardNotMaintenance}, Alternatives: derivedTargets(derivable...)},
		// cinder/api/contrib/admin_actions.py _force_detach: admin only, then
		// terminate_connection and detach (attachment_deletion_allowed).
		{Event: EventForceDetach, Set: setLive, Guards: []Guard{guardCallerIsAdmin, guardDeletionAllowed, guardNotMaintenance}, Alternatives: derivedTargets(derivable...)},
		// cinder/volume/api.py initialize_connection: status unchanged, not in maintenance.
		{Event: EventInitializeConnection, Set: setLive, Guards: []Guard{guardNotMaintenance}},
		// cinder/volume/api.py terminate_connection: attachment_deletion_allowed,
		// status unchanged (checked, never written: the status moves with
		// the detach).
		{Event: EventTerminateConnection, Set: setLive, Guards: []Guard{guardDeletionAllowed}},
		// cinder/volume/api.py attachment_update and manager.py
		// attachment_update (volume_attached mark_attached=False): attaching,
		// not from an error status (409).
		{Event: EventAttachmentUpdate, Set: setLiveNoError, To: StatusAttaching, Guards: []Guard{guardNoDuplicateConnector}},
		// cinder/volume/api.py attachment_create with a connector calls
		// volume_rpcapi.attachment_update, the manager's: volume_attached
		// (mark_attached=False) without the API's checks.
		{Event: EventAttachmentConnect, Set: setLive, To: StatusAttaching},
		// cinder/api/v3/attachments.py complete: no check, volume in-use.
		{Event: EventAttachmentComplete, Set: setLive, To: StatusInUse},
		// cinder/volume/api.py attachment_delete: attachment_deletion_allowed,
		// no status check, then the status the remaining attachments derive.
		{Event: EventAttachmentDelete, Set: setLive, Guards: []Guard{guardDeletionAllowed}, Alternatives: derivedTargets(derivable...)},
		// A reconciler's repair (RecomputeStatus): the status the
		// attachments derive, as upstream volume_detached sets it.
		{Event: EventRecomputeStatus, Set: setLive, Alternatives: derivedTargets(derivable...)},

		// cinder/volume/manager.py create_volume: available on success, error on failure.
		{Event: EventCreateDone, From: []Status{StatusCreating}, To: StatusAvailable},
		{Event: EventCreateError, From: []Status{StatusCreating}, To: StatusError},
		// cinder/volume/api.py delete: expected status (no force).
		{Event: EventDelete, From: []Status{StatusAvailable, StatusError, StatusErrorRestoring, StatusErrorExtending, StatusErrorManaging}, To: StatusDeleting,
			Guards: []Guard{guardNotAttached, guardNotMigrating, guardNoAttachmentInUse}},
		// cinder/volume/manager.py delete_volume: the record goes.
		{Event: EventDeleteDone, From: []Status{StatusDeleting}, To: StatusDeleted},
		// cinder/volume/manager.py delete_volume: error_deleting when the driver fails.
		{Event: EventDeleteError, From: []Status{StatusDeleting}, To: StatusErrorDeleting},
	}
	for _, target := range Statuses {
		if slices.Contains(resetForbidden, target) {
			continue
		}
		// cinder/api/contrib/admin_actions.py _reset_status: admin only, any
		// listed status; in-use needs attachments.
		guards := []Guard{guardCallerIsAdmin}
		if target == StatusInUse {
			guards = append(guards, guardHasAttachments)
		}
		rows = append(rows, row{Event: ResetEvent(target), Set: setAll, To: target, Guards: guards})
	}
	return rows
}

// derivable are the statuses DeriveStatus yields from attachments (it also
// returns the current status, unchanged, while a migration or an upload
// holds it).
var derivable = []Status{StatusAvailable, StatusInUse, StatusAttaching, StatusReserved}

// derivedTargets are the alternatives of a row whose target is the status
// the volume's attachments derive (cinder/db/api.py volume_detached): one per
// given status, chosen by its derived_status_is_* guard, and otherwise the
// status unchanged (the derivation holds it, or derives the status the row
// leaves from). The derived statuses are distinct values of one pure
// function, so exactly one alternative applies.
func derivedTargets(targets ...Status) []fsm.Alternative[Status, *Request] {
	out := make([]fsm.Alternative[Status, *Request], 0, len(targets)+1)
	for _, t := range targets {
		out = append(out, fsm.Alternative[Status, *Request]{To: t, When: guardDerived(t)})
	}
	return append(out, fsm.Alternative[Status, *Request]{})
}

// nonErrorLive are the live statuses without "error" in their name.
func nonErrorLive() []Status {
	var out []Status
	for _, s := range liveStatuses {
		if !isErrorStatus(s) {
			out = append(out, s)
		}
	}
	return out
}

// refuseStatus maps a missing volume.status row to the exception upstream
// raises for it.
func refuseStatus(s Status, e Event) error {
	rule := fsm.RuleNoTransition
	switch {
	case strings.HasPrefix(string(e), resetPrefix):
		// cinder/api/contrib/admin_actions.py _reset_status: HTTPBadRequest.
		return newError(ErrInvalidInput, rule, "cannot reset-state to %s", strings.TrimPrefix(string(e), resetPrefix))
	case e == EventReserve:
		return newError(ErrInvalidVolume, rule, "volume status must be available (or in-use when multiattach) to reserve, but the status is %s", s)
	case e == EventBeginDetaching:
		return newError(ErrInvalidVolume, rule, "unable to detach volume: status must be in-use and attach_status must be attached to detach, but the status is %s", s)
	case e == EventAttachmentCreate && isErrorStatus(s):
		return newError(ErrInvalidVolume, rule, "volume attachments can not be created if the volume is in an error state; the status is %s", s)
	case e == EventAttachmentCreate || e == EventAttachmentCreateSameInstance:
		return newError(ErrInvalidVolume, rule, "volume status must be available or downloading (or in-use when multiattach) to reserve, but the current status is %s", s)
	case e == EventAttachmentUpdate && isErrorStatus(s):
		// cinder/volume/api.py attachment_update: ResourceConflict, 409.
		return newError(ErrResourceConflict, rule, "volume attachments can not be updated if the volume is in an error state; the status is %s", s)
	case e == EventDelete:
		return newError(ErrInvalidVolume, rule, "volume status must be available, error, error_restoring, error_extending or error_managing to be deleted, but the status is %s", s)
	}
	return newError(ErrInvalidVolume, rule, "%s is not allowed while the volume status is %s", e, s)
}
