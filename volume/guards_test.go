package volume

import (
	"errors"
	"net/http"
	"testing"
)

func vol(status Status, mut ...func(*Volume)) *Volume {
	v := &Volume{ID: "vol-1", Status: status, AttachStatus: AttachDetached}
	for _, m := range mut {
		m(v)
	}
	return v
}

func att(id string, st AttachStatus, mut ...func(*Attachment)) *Attachment {
	a := &Attachment{ID: id, VolumeID: "vol-1", AttachStatus: st}
	for _, m := range mut {
		m(a)
	}
	return a
}

func multiattach(v *Volume)     { v.Multiattach = true }
func migrating(v *Volume)       { v.MigrationStatus = "migrating" }
func attachedSummary(v *Volume) { v.AttachStatus = AttachAttached }
func modeRO(v *Volume)          { v.AdminMetadata = map[string]string{MetaAttachedMode: ModeRO} }
func withConn(a *Attachment)    { a.ConnectionInfo = &ConnectionInfo{DriverVolumeType: DriverFile} }
func forInstance(id string) func(*Attachment) {
	return func(a *Attachment) { a.InstanceUUID = id }
}

// TestGuards checks every guard of both tables once accepting and once
// refusing, with the exact upstream error kind, HTTP status and rule name.
func TestGuards(t *testing.T) {
	const inst = "6edad723-c62d-40d4-a29e-d9ac6a3247ee"
	cases := []struct {
		guard    Guard
		accept   *Request
		refuse   *Request
		kind     *ErrorKind
		wantCode int
	}{
		{guardMultiattach,
			&Request{Volume: vol(StatusInUse, multiattach)},
			&Request{Volume: vol(StatusInUse)},
			ErrInvalidVolume, http.StatusBadRequest},
		{guardAttachStatusAttached,
			&Request{Volume: vol(StatusInUse, attachedSummary)},
			&Request{Volume: vol(StatusInUse)},
			ErrInvalidVolume, http.StatusBadRequest},
		{guardNotMigrating,
			&Request{Volume: vol(StatusInUse, func(v *Volume) { v.MigrationStatus = MigrationSuccess })},
			&Request{Volume: vol(StatusInUse, migrating)},
			ErrInvalidVolume, http.StatusBadRequest},
		{guardNotMaintenance,
			&Request{Volume: vol(StatusAvailable)},
			&Request{Volume: vol(StatusMaintenance)},
			ErrInvalidVolume, http.StatusBadRequest},
		{guardAttachModeMatches,
			&Request{Volume: vol(StatusAttaching, modeRO), Mode: ModeRO},
			&Request{Volume: vol(StatusAttaching, modeRO), Mode: ModeRW},
			ErrInvalidVolume, http.StatusBadRequest},
		{guardNotAlreadyAttached,
			&Request{Volume: vol(StatusInUse, multiattach)},
			&Request{Volume: vol(StatusInUse)},
			ErrInvalidVolume, http.StatusBadRequest},
		{guardInstanceAttached,
			&Request{Volume: vol(StatusInUse), InstanceUUID: inst, Attachments: []*Attachment{att("a1", AttachAttached, forInstance(inst))}},
			&Request{Volume: vol(StatusInUse), InstanceUUID: inst, Attachments: []*Attachment{att("a1", AttachAttached, forInstance("other"))}},
			ErrInvalidVolume, http.StatusBadRequest},
		{guardNoDuplicateConnector,
			&Request{Volume: vol(StatusReserved), Attachment: att("a2", AttachReserved),
				Attachments: []*Attachment{att("a1", AttachReserved), att("a2", AttachReserved)}},
			&Request{Volume: vol(StatusReserved), Attachment: att("a2", AttachReserved),
				Attachments: []*Attachment{att("a1", AttachAttaching, withConn), att("a2", AttachReserved)}},
			ErrResourceConflict, http.StatusConflict},
		{guardNotAttached,
			&Request{Volume: vol(StatusAvailable)},
			&Request{Volume: vol(StatusError, attachedSummary)},
			ErrInvalidVolume, http.StatusBadRequest},
		{guardNoAttachmentInUse,
			&Request{Volume: vol(StatusAvailable), Attachments: []*Attachment{att("a1", AttachErrorAttaching)}},
			&Request{Volume: vol(StatusError), Attachments: []*Attachment{att("a1", AttachErrorDetaching)}},
			ErrInvalidVolume, http.StatusBadRequest},
		{guardCallerIsAdmin,
			&Request{Volume: vol(StatusError), Caller: Caller{Admin: true}},
			&Request{Volume: vol(StatusError)},
			ErrPolicyNotAuthorized, http.StatusForbidden},
		{guardHasAttachments,
			&Request{Volume: vol(StatusError), Attachments: []*Attachment{att("a1", AttachAttached)}},
			&Request{Volume: vol(StatusError)},
			ErrInvalidInput, http.StatusBadRequest},
		{guardDerived(StatusAvailable),
			&Request{Volume: vol(StatusDetaching), Attachments: []*Attachment{att("a1", AttachErrorAttaching)}},
			&Request{Volume: vol(StatusDetaching), Attachments: []*Attachment{att("a1", AttachAttached)}},
			ErrInvalidVolume, http.StatusBadRequest},
		{guardDerived(StatusInUse),
			&Request{Volume: vol(StatusDetaching), Attachments: []*Attachment{att("a1", AttachAttached), att("a2", AttachReserved)}},
			&Request{Volume: vol(StatusDetaching)},
			ErrInvalidVolume, http.StatusBadRequest},
		{guardDerived(StatusAttaching),
			&Request{Volume: vol(StatusDetaching), Attachments: []*Attachment{att("a1", AttachAttaching), att("a2", AttachReserved)}},
			&Request{Volume: vol(StatusDetaching), Attachments: []*Attachment{att("a1", AttachReserved)}},
			ErrInvalidVolume, http.StatusBadRequest},
		{guardDerived(StatusReserved),
			&Request{Volume: vol(StatusDetaching), Attachments: []*Attachment{att("a1", AttachReserved)}},
			&Request{Volume: vol(StatusDetaching), Attachments: []*Attachment{att("a1", AttachAttaching)}},
			ErrInvalidVolume, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.guard.Name, func(t *testing.T) {
			if err := tc.guard.Check(tc.accept); err != nil {
				t.Fatalf("accepting case refused: %v", err)
			}
			err := tc.guard.Check(tc.refuse)
			if err == nil {
				t.Fatal("refusing case accepted")
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("error %v is not %s", err, tc.kind.Name())
			}
			var e *Error
			if !errors.As(err, &e) || e.Rule != tc.guard.Name {
				t.Errorf("error %v does not name rule %s", err, tc.guard.Name)
			}
			if got := HTTPStatus(err); got != tc.wantCode {
				t.Errorf("HTTP status %d, want %d", got, tc.wantCode)
			}
		})
	}
}

// TestErrorKindsHierarchy checks the upstream class hierarchy through
// errors.Is, and that a cause stays reachable.
func TestErrorKindsHierarchy(t *testing.T) {
	cause := errors.New("disk on fire")
	err := &Error{Kind: ErrVolumeNotFound, Reason: "volume x could not be found", Err: cause}
	for _, target := range []error{ErrVolumeNotFound, ErrNotFound, cause} {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(%v, %v) = false", err, target)
		}
	}
	if errors.Is(err, ErrInvalid) {
		t.Errorf("VolumeNotFound must not be an Invalid")
	}
	if !errors.Is(newError(ErrPolicyNotAuthorized, "", "x"), ErrNotAuthorized) {
		t.Errorf("PolicyNotAuthorized must be a NotAuthorized")
	}
	if !errors.Is(newError(ErrResourceConflict, "", "x"), ErrInvalid) || HTTPStatus(newError(ErrResourceConflict, "", "x")) != http.StatusConflict {
		t.Errorf("ResourceConflict must be an Invalid answered with 409")
	}
	if HTTPStatus(nil) != http.StatusOK || HTTPStatus(cause) != http.StatusInternalServerError {
		t.Errorf("HTTPStatus of nil / foreign errors wrong")
	}
}
