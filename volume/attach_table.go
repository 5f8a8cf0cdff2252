package volume

import (
	"github.com/volattach/volattach/fsm"
)

// AttachEvent is an event of the volume.attach_status table (per attachment).
type AttachEvent string

// The events of the volume.attach_status table.
const (
	// AttachEventCreate creates an attachment record in reserved (upstream
	// _attachment_reserve): not a row, the history entry of the creation.
	AttachEventCreate AttachEvent = "attachment_create"
	// AttachEventBeginAttach creates an attachment record in attaching
	// (upstream Volume.begin_attach, legacy attach step 4): not a row.
	AttachEventBeginAttach AttachEvent = "begin_attach"

	AttachEventUpdate       AttachEvent = "attachment_update"
	AttachEventComplete     AttachEvent = "attachment_complete"
	AttachEventFinishAttach AttachEvent = "finish_attach"
	AttachEventAttachFailed AttachEvent = "attach_failed"
	AttachEventDetach       AttachEvent = "detach"
	AttachEventDelete       AttachEvent = "attachment_delete"
	AttachEventForceDetach  AttachEvent = "force_detach"
	AttachEventDetachFailed AttachEvent = "detach_failed"
	AttachEventReset        AttachEvent = "reset_status"
	AttachEventDestroy      AttachEvent = "destroy"
)

// AttachTable is the volume.attach_status table (the subject is *Request).
type AttachTable = fsm.Table[AttachStatus, AttachEvent, *Request]

// liveAttach are the attach statuses of an attachment that still exists
// upstream (not soft-deleted).
var liveAttach = []AttachStatus{AttachReserved, AttachAttaching, AttachAttached, AttachErrorAttaching, AttachErrorDetaching}

// attachTable is the volume.attach_status table: the 7 upstream values
// (cinder/objects/fields.py VolumeAttachStatus). There is no "detaching":
// upstream never stores it on an attachment (begin_detaching changes only the
// volume's status, cinder/volume/api.py; the only writers of an attachment's
// attach_status are volume_attach, volume_attached, volume_detached,
// attachment_destroy and the error paths in cinder/volume/manager.py, none
// of which writes detaching; _get_statuses_from_attachments merely lists it
// in its precedence comment).
//
// A record starts in reserved (attachments API) or, for the legacy attach,
// in attaching (begin_attach), hence attaching is an entry state. detached
// (upstream volume_detached soft-deletes with that status) and deleted
// (attachment_destroy) are terminal: the commit that reaches either removes
// the record from the store, the history keeps the transition.
var attachTable = fsm.New("volume.attach_status", fsm.Definition[AttachStatus, AttachEvent, *Request]{
	States:   AttachStatuses,
	Initial:  AttachReserved,
	Entry:    []AttachStatus{AttachAttaching},
	Terminal: []AttachStatus{AttachDetached, AttachDeleted},
	Rows: []fsm.Row[AttachStatus, AttachEvent, *Request]{
		// cinder/volume/manager.py attachment_update: volume_attached(mark_attached=False);
		// no attachment-status precondition.
		{Event: AttachEventUpdate, From: liveAttach, To: AttachAttaching},
		// cinder/api/v3/attachments.py complete: attachment attached; no precondition.
		{Event: AttachEventComplete, From: liveAttach, To: AttachAttached},
		// cinder/objects/volume_attachment.py finish_attach (legacy attach step 8).
		{Event: AttachEventFinishAttach, From: []AttachStatus{AttachAttaching}, To: AttachAttached},
		// cinder/volume/manager.py attach_volume steps 5-7: error_attaching.
		{Event: AttachEventAttachFailed, From: []AttachStatus{AttachAttaching}, To: AttachErrorAttaching},
		// cinder/db/api.py volume_detached via manager.py detach_volume.
		{Event: AttachEventDetach, From: liveAttach, To: AttachDetached},
		// cinder/volume/api.py attachment_delete: finish_detach.
		{Event: AttachEventDelete, From: liveAttach, To: AttachDetached},
		// cinder/api/contrib/admin_actions.py _force_detach: admin only.
		{Event: AttachEventForceDetach, From: liveAttach, To: AttachDetached, Guards: []Guard{guardCallerIsAdmin}},
		// cinder/volume/manager.py detach_volume: error_detaching when the backend fails.
		{Event: AttachEventDetachFailed, From: []AttachStatus{AttachReserved, AttachAttaching, AttachAttached, AttachErrorAttaching}, To: AttachErrorDetaching},
		// cinder/api/contrib/admin_actions.py _reset_status attach_status=detached: volume_detached on every attachment.
		{Event: AttachEventReset, From: liveAttach, To: AttachDetached, Guards: []Guard{guardCallerIsAdmin}},
		// cinder/db/api.py attachment_destroy: deleted (here: with the volume,
		// or an error_attaching record replaced by its instance's next attach).
		{Event: AttachEventDestroy, From: liveAttach, To: AttachDeleted},
	},
	Refuse: refuseAttach,
})

// refuseAttach maps a missing volume.attach_status row to InvalidVolume.
func refuseAttach(s AttachStatus, e AttachEvent) error {
	return newError(ErrInvalidVolume, fsm.RuleNoTransition, "%s is not allowed while the attachment is %s", e, s)
}
