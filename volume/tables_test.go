package volume

import (
	"errors"
	"net/http"
	"testing"

	"github.com/volattach/volattach/fsm"
)

// TestStatusTableRows walks the actions of REFERENCE section 3 through the
// volume.status table: each accepted from a status upstream allows, and
// refused with upstream's error where it refuses.
func TestStatusTableRows(t *testing.T) {
	admin := Caller{Admin: true}
	cases := []struct {
		name   string
		event  Event
		req    *Request
		want   Status // for accepted cases
		kind   *ErrorKind
		rule   string
		status int
	}{
		{name: "create done", event: EventCreateDone, req: &Request{Volume: vol(StatusCreating)}, want: StatusAvailable},
		{name: "create failed", event: EventCreateError, req: &Request{Volume: vol(StatusCreating)}, want: StatusError},
		{name: "create done twice", event: EventCreateDone, req: &Request{Volume: vol(StatusAvailable)}, kind: ErrInvalidVolume, rule: fsm.RuleNoTransition, status: 400},
		{name: "delete available", event: EventDelete, req: &Request{Volume: vol(StatusAvailable)}, want: StatusDeleting},
		{name: "delete with error_attaching leftover", event: EventDelete, req: &Request{Volume: vol(StatusAvailable), Attachments: []*Attachment{att("a", AttachErrorAttaching)}}, want: StatusDeleting},
		{name: "delete in-use", event: EventDelete, req: &Request{Volume: vol(StatusInUse)}, kind: ErrInvalidVolume, rule: fsm.RuleNoTransition, status: 400},
		{name: "delete reserved", event: EventDelete, req: &Request{Volume: vol(StatusReserved)}, kind: ErrInvalidVolume, rule: fsm.RuleNoTransition, status: 400},
		{name: "delete error while attached", event: EventDelete, req: &Request{Volume: vol(StatusError, attachedSummary)}, kind: ErrInvalidVolume, rule: RuleNotAttached, status: 400},
		{name: "delete migrating", event: EventDelete, req: &Request{Volume: vol(StatusAvailable, migrating)}, kind: ErrInvalidVolume, rule: RuleNotMigrating, status: 400},
		{name: "delete error_detaching leftover", event: EventDelete, req: &Request{Volume: vol(StatusError), Attachments: []*Attachment{att("a", AttachErrorDetaching)}}, kind: ErrInvalidVolume, rule: RuleNoAttachmentInUse, status: 400},
		{name: "delete done", event: EventDeleteDone, req: &Request{Volume: vol(StatusDeleting)}, want: StatusDeleted},
		{name: "delete failed", event: EventDeleteError, req: &Request{Volume: vol(StatusDeleting)}, want: StatusErrorDeleting},

		{name: "reserve available", event: EventReserve, req: &Request{Volume: vol(StatusAvailable)}, want: StatusAttaching},
		{name: "reserve in-use multiattach", event: EventReserve, req: &Request{Volume: vol(StatusInUse, multiattach)}, want: StatusAttaching},
		{name: "reserve in-use", event: EventReserve, req: &Request{Volume: vol(StatusInUse)}, kind: ErrInvalidVolume, rule: RuleMultiattach, status: 400},
		{name: "reserve attaching", event: EventReserve, req: &Request{Volume: vol(StatusAttaching)}, kind: ErrInvalidVolume, rule: fsm.RuleNoTransition, status: 400},
		{name: "unreserve attaching", event: EventUnreserve, req: &Request{Volume: vol(StatusAttaching)}, want: StatusAvailable},
		{name: "unreserve available", event: EventUnreserve, req: &Request{Volume: vol(StatusAvailable)}, kind: ErrInvalidVolume, rule: fsm.RuleNoTransition, status: 400},
		{name: "begin_detaching", event: EventBeginDetaching, req: &Request{Volume: vol(StatusInUse, attachedSummary)}, want: StatusDetaching},
		{name: "begin_detaching not attached", event: EventBeginDetaching, req: &Request{Volume: vol(StatusInUse)}, kind: ErrInvalidVolume, rule: RuleAttachStatusAttached, status: 400},
		{name: "begin_detaching migrating", event: EventBeginDetaching, req: &Request{Volume: vol(StatusInUse, attachedSummary, migrating)}, kind: ErrInvalidVolume, rule: RuleNotMigrating, status: 400},
		{name: "begin_detaching available", event: EventBeginDetaching, req: &Request{Volume: vol(StatusAvailable)}, kind: ErrInvalidVolume, rule: fsm.RuleNoTransition, status: 400},
		{name: "roll_detaching", event: EventRollDetaching, req: &Request{Volume: vol(StatusDetaching)}, want: StatusInUse},
		{name: "roll_detaching in-use", event: EventRollDetaching, req: &Request{Volume: vol(StatusInUse)}, kind: ErrInvalidVolume, rule: fsm.RuleNoTransition, status: 400},
		{name: "initialize_connection", event: EventInitializeConnection, req: &Request{Volume: vol(StatusAttaching)}, want: StatusAttaching},
		{name: "initialize_connection maintenance", event: EventInitializeConnection, req: &Request{Volume: vol(StatusMaintenance)}, kind: ErrInvalidVolume, rule: RuleNotMaintenance, status: 400},
		{name: "initialize_connection deleting", event: EventInitializeConnection, req: &Request{Volume: vol(StatusDeleting)}, kind: ErrInvalidVolume, rule: fsm.RuleNoTransition, status: 400},
		{name: "terminate_connection", event: EventTerminateConnection, req: &Request{Volume: vol(StatusDetaching)}, want: StatusDetaching},
		{name: "attach reserved", event: EventAttach, req: &Request{Volume: vol(StatusAttaching), Mode: ModeRW}, want: StatusInUse},
		{name: "attach different mode", event: EventAttach, req: &Request{Volume: vol(StatusAttaching, modeRO), Mode: ModeRW}, kind: ErrInvalidVolume, rule: RuleAttachModeMatches, status: 400},
		{name: "attach already attached", event: EventAttach, req: &Request{Volume: vol(StatusInUse), Mode: ModeRW}, kind: ErrInvalidVolume, rule: RuleNotAlreadyAttached, status: 400},
		{name: "attach multiattach in-use", event: EventAttach, req: &Request{Volume: vol(StatusInUse, multiattach), Mode: ModeRW}, want: StatusInUse},
		{name: "attach maintenance", event: EventAttach, req: &Request{Volume: vol(StatusMaintenance), Mode: ModeRW}, kind: ErrInvalidVolume, rule: RuleNotMaintenance, status: 400},
		{name: "detach", event: EventDetach, req: &Request{Volume: vol(StatusDetaching)}, want: StatusAvailable},
		{name: "detach maintenance", event: EventDetach, req: &Request{Volume: vol(StatusMaintenance)}, kind: ErrInvalidVolume, rule: RuleNotMaintenance, status: 400},
		{name: "force_detach admin", event: EventForceDetach, req: &Request{Volume: vol(StatusError), Caller: admin}, want: StatusAvailable},
		{name: "force_detach user", event: EventForceDetach, req: &Request{Volume: vol(StatusInUse)}, kind: ErrPolicyNotAuthorized, rule: RuleCallerIsAdmin, status: 403},

		{name: "attachment_create available", event: EventAttachmentCreate, req: &Request{Volume: vol(StatusAvailable)}, want: StatusReserved},
		{name: "attachment_create downloading", event: EventAttachmentCreate, req: &Request{Volume: vol(StatusDownloading)}, want: StatusReserved},
		{name: "attachment_create in-use multiattach", event: EventAttachmentCreate, req: &Request{Volume: vol(StatusInUse, multiattach)}, want: StatusReserved},
		{name: "attachment_create in-use", event: EventAttachmentCreate, req: &Request{Volume: vol(StatusInUse)}, kind: ErrInvalidVolume, rule: RuleMultiattach, status: 400},
		{name: "attachment_create error", event: EventAttachmentCreate, req: &Request{Volume: vol(StatusError)}, kind: ErrInvalidVolume, rule: fsm.RuleNoTransition, status: 400},
		{name: "attachment_create same instance", event: EventAttachmentCreateSameInstance,
			req: &Request{Volume: vol(StatusInUse), InstanceUUID: "i1", Attachments: []*Attachment{att("a", AttachAttached, forInstance("i1"))}}, want: StatusInUse},
		{name: "attachment_create same instance other", event: EventAttachmentCreateSameInstance,
			req: &Request{Volume: vol(StatusInUse), InstanceUUID: "i2", Attachments: []*Attachment{att("a", AttachAttached, forInstance("i1"))}}, kind: ErrInvalidVolume, rule: RuleInstanceAttached, status: 400},
		{name: "attachment_update", event: EventAttachmentUpdate, req: &Request{Volume: vol(StatusReserved)}, want: StatusAttaching},
		{name: "attachment_update error status", event: EventAttachmentUpdate, req: &Request{Volume: vol(StatusError)}, kind: ErrResourceConflict, rule: fsm.RuleNoTransition, status: 409},
		{name: "attachment_update duplicate", event: EventAttachmentUpdate,
			req:  &Request{Volume: vol(StatusReserved), Attachment: att("b", AttachReserved), Attachments: []*Attachment{att("a", AttachAttached, withConn), att("b", AttachReserved)}},
			kind: ErrResourceConflict, rule: RuleNoDuplicateConnector, status: 409},
		{name: "attachment_complete", event: EventAttachmentComplete, req: &Request{Volume: vol(StatusAttaching)}, want: StatusInUse},
		{name: "attachment_delete of the last", event: EventAttachmentDelete, req: &Request{Volume: vol(StatusInUse)}, want: StatusAvailable},
		{name: "attachment_delete, one left attached", event: EventAttachmentDelete, req: &Request{Volume: vol(StatusInUse), Attachments: []*Attachment{att("a", AttachAttached)}}, want: StatusInUse},
		{name: "attachment_delete while migrating", event: EventAttachmentDelete, req: &Request{Volume: vol(StatusInUse, migrating)}, want: StatusInUse},

		{name: "unreserve, none left", event: EventUnreserve, req: &Request{Volume: vol(StatusAttaching)}, want: StatusAvailable},
		{name: "unreserve, one attached", event: EventUnreserve, req: &Request{Volume: vol(StatusAttaching), Attachments: []*Attachment{att("a", AttachAttached)}}, want: StatusInUse},
		{name: "unreserve, one attaching", event: EventUnreserve, req: &Request{Volume: vol(StatusAttaching), Attachments: []*Attachment{att("a", AttachAttaching)}}, want: StatusAttaching},
		{name: "detach of the last", event: EventDetach, req: &Request{Volume: vol(StatusDetaching)}, want: StatusAvailable},
		{name: "detach, one left reserved", event: EventDetach, req: &Request{Volume: vol(StatusDetaching), Attachments: []*Attachment{att("a", AttachReserved)}}, want: StatusReserved},
		{name: "recompute to available", event: EventRecomputeStatus, req: &Request{Volume: vol(StatusDetaching)}, want: StatusAvailable},
		{name: "recompute to in-use", event: EventRecomputeStatus, req: &Request{Volume: vol(StatusAvailable), Attachments: []*Attachment{att("a", AttachAttached)}}, want: StatusInUse},

		{name: "reset to available", event: ResetEvent(StatusAvailable), req: &Request{Volume: vol(StatusErrorDeleting), Caller: admin}, want: StatusAvailable},
		{name: "reset to maintenance", event: ResetEvent(StatusMaintenance), req: &Request{Volume: vol(StatusInUse), Caller: admin}, want: StatusMaintenance},
		{name: "reset by user", event: ResetEvent(StatusAvailable), req: &Request{Volume: vol(StatusError)}, kind: ErrPolicyNotAuthorized, rule: RuleCallerIsAdmin, status: 403},
		{name: "reset to in-use without attachments", event: ResetEvent(StatusInUse), req: &Request{Volume: vol(StatusError), Caller: admin}, kind: ErrInvalidInput, rule: RuleHasAttachments, status: 400},
		{name: "reset to in-use with attachments", event: ResetEvent(StatusInUse), req: &Request{Volume: vol(StatusError), Caller: admin, Attachments: []*Attachment{att("a", AttachAttached)}}, want: StatusInUse},
		{name: "reset to deleting", event: ResetEvent(StatusDeleting), req: &Request{Volume: vol(StatusError), Caller: admin}, kind: ErrInvalidInput, rule: fsm.RuleNoTransition, status: 400},
		{name: "reset to error_deleting", event: ResetEvent(StatusErrorDeleting), req: &Request{Volume: vol(StatusError), Caller: admin}, kind: ErrInvalidInput, rule: fsm.RuleNoTransition, status: 400},
		{name: "reset to detaching", event: ResetEvent(StatusDetaching), req: &Request{Volume: vol(StatusInUse), Caller: admin}, kind: ErrInvalidInput, rule: fsm.RuleNoTransition, status: 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			from := tc.req.Volume.Status
			got, err := statusTable.Next(from, tc.event, tc.req)
			if tc.kind == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got != tc.want {
					t.Fatalf("%s from %s went to %s, want %s", tc.event, from, got, tc.want)
				}
				return
			}
			assertRefused(t, err, got, from, tc.kind, tc.rule, tc.status)
		})
	}
}

// TestAttachTableRows walks the per-attachment rows.
func TestAttachTableRows(t *testing.T) {
	admin := Caller{Admin: true}
	cases := []struct {
		name   string
		from   AttachStatus
		event  AttachEvent
		caller Caller
		want   AttachStatus
		kind   *ErrorKind
		rule   string
		status int
	}{
		{name: "update reserved", from: AttachReserved, event: AttachEventUpdate, want: AttachAttaching},
		{name: "update error_detaching (A9: no precondition)", from: AttachErrorDetaching, event: AttachEventUpdate, want: AttachAttaching},
		{name: "complete attaching", from: AttachAttaching, event: AttachEventComplete, want: AttachAttached},
		{name: "complete error_attaching (A12: no precondition)", from: AttachErrorAttaching, event: AttachEventComplete, want: AttachAttached},
		{name: "complete error_detaching (A12: no precondition)", from: AttachErrorDetaching, event: AttachEventComplete, want: AttachAttached},
		{name: "finish_attach", from: AttachAttaching, event: AttachEventFinishAttach, want: AttachAttached},
		{name: "finish_attach reserved", from: AttachReserved, event: AttachEventFinishAttach, kind: ErrInvalidVolume, rule: fsm.RuleNoTransition, status: 400},
		{name: "attach_failed", from: AttachAttaching, event: AttachEventAttachFailed, want: AttachErrorAttaching},
		{name: "detach attached", from: AttachAttached, event: AttachEventDetach, want: AttachDetached},
		{name: "detach error_attaching", from: AttachErrorAttaching, event: AttachEventDetach, want: AttachDetached},
		{name: "detach detached", from: AttachDetached, event: AttachEventDetach, kind: ErrInvalidVolume, rule: fsm.RuleNoTransition, status: 400},
		{name: "attachment_delete reserved", from: AttachReserved, event: AttachEventDelete, want: AttachDetached},
		{name: "force_detach admin", from: AttachErrorDetaching, event: AttachEventForceDetach, caller: admin, want: AttachDetached},
		{name: "force_detach user", from: AttachAttached, event: AttachEventForceDetach, kind: ErrPolicyNotAuthorized, rule: RuleCallerIsAdmin, status: 403},
		{name: "detach_failed", from: AttachAttached, event: AttachEventDetachFailed, want: AttachErrorDetaching},
		{name: "reset admin", from: AttachAttaching, event: AttachEventReset, caller: admin, want: AttachDetached},
		{name: "reset user", from: AttachAttaching, event: AttachEventReset, kind: ErrPolicyNotAuthorized, rule: RuleCallerIsAdmin, status: 403},
		{name: "destroy", from: AttachErrorAttaching, event: AttachEventDestroy, want: AttachDeleted},
		{name: "destroy deleted", from: AttachDeleted, event: AttachEventDestroy, kind: ErrInvalidVolume, rule: fsm.RuleNoTransition, status: 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := &Request{Volume: vol(StatusInUse), Attachment: att("a", tc.from), Caller: tc.caller}
			got, err := attachTable.Next(tc.from, tc.event, req)
			if tc.kind == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got != tc.want {
					t.Fatalf("%s from %s went to %s, want %s", tc.event, tc.from, got, tc.want)
				}
				return
			}
			assertRefused(t, err, got, tc.from, tc.kind, tc.rule, tc.status)
		})
	}
}

func assertRefused[S ~string](t *testing.T, err error, got, from S, kind *ErrorKind, rule string, status int) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted (to %s), want %s", got, kind.Name())
	}
	if got != from {
		t.Errorf("refusal moved the state from %s to %s", from, got)
	}
	var refused *fsm.RefusedError
	if !errors.As(err, &refused) || refused.Rule != rule {
		t.Errorf("refusal %v does not name rule %s", err, rule)
	}
	if !errors.Is(err, kind) {
		t.Errorf("refusal %v is not %s", err, kind.Name())
	}
	if HTTPStatus(err) != status {
		t.Errorf("HTTP status %d, want %d", HTTPStatus(err), status)
	}
}

// TestTablesShape checks the names, state counts and order Tables() promises
// (SHARED_NAMES.md) and that every volume status has a reset row except the
// three upstream forbids.
func TestTablesShape(t *testing.T) {
	ts := Tables()
	if len(ts) != 2 {
		t.Fatalf("Tables() has %d tables", len(ts))
	}
	st, at := ts[0].Describe(), ts[1].Describe()
	if st.Name != "volume.status" || len(st.States) != 22 {
		t.Errorf("first table %s with %d states", st.Name, len(st.States))
	}
	if at.Name != "volume.attach_status" || len(at.States) != 7 {
		t.Errorf("second table %s with %d states", at.Name, len(at.States))
	}
	for _, s := range Statuses {
		_, ok := statusTable.Row(StatusError, ResetEvent(s))
		forbidden := s == StatusDeleting || s == StatusErrorDeleting || s == StatusDetaching
		if ok == forbidden {
			t.Errorf("reset row to %s: present=%v", s, ok)
		}
	}
	if http.StatusText(HTTPStatus(refuseStatus(StatusError, EventAttachmentUpdate))) != "Conflict" {
		t.Errorf("attachment_update from an error status must be a 409")
	}
}

// TestValidateUnknownState checks that a stored record with a state no table
// knows is an *fsm.UnknownStateError, never a panic.
func TestValidateUnknownState(t *testing.T) {
	var unknown *fsm.UnknownStateError
	v := &Volume{ID: "v", Status: "exploded"}
	if err := v.Validate(); !errors.As(err, &unknown) || unknown.Table != "volume.status" {
		t.Errorf("volume: %v", err)
	}
	v = &Volume{ID: "v", Status: StatusAvailable, AttachStatus: "detaching"}
	if err := v.Validate(); !errors.As(err, &unknown) || unknown.Table != "volume.attach_status" {
		t.Errorf("volume attach status: %v", err)
	}
	a := &Attachment{ID: "a", VolumeID: "v", AttachStatus: "detaching"}
	if err := a.Validate(); !errors.As(err, &unknown) || !errors.Is(err, fsm.ErrUnknownState) {
		t.Errorf("attachment: %v", err)
	}
	if err := (&Volume{ID: "v", Status: StatusInUse, AttachStatus: AttachAttached}).Validate(); err != nil {
		t.Errorf("valid volume refused: %v", err)
	}
}
