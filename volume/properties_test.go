package volume

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/volattach/volattach/fsm"
)

// genRequest draws an arbitrary subject: any volume status and flags, up to
// four attachments in any status, any caller, mode and instance.
func genRequest(t *rapid.T) *Request {
	v := &Volume{
		ID:              "vol-1",
		Status:          rapid.SampledFrom(Statuses).Draw(t, "status"),
		AttachStatus:    rapid.SampledFrom(AttachStatuses).Draw(t, "attach_status"),
		Multiattach:     rapid.Bool().Draw(t, "multiattach"),
		MigrationStatus: rapid.SampledFrom([]string{"", "migrating", MigrationSuccess, MigrationError}).Draw(t, "migration"),
	}
	if rapid.Bool().Draw(t, "has_mode") {
		v.AdminMetadata = map[string]string{MetaAttachedMode: rapid.SampledFrom([]string{ModeRW, ModeRO}).Draw(t, "attached_mode")}
	}
	n := rapid.IntRange(0, 4).Draw(t, "attachments")
	req := &Request{
		Volume:       v,
		Caller:       Caller{Admin: rapid.Bool().Draw(t, "admin")},
		Mode:         rapid.SampledFrom([]string{ModeRW, ModeRO}).Draw(t, "mode"),
		InstanceUUID: rapid.SampledFrom([]string{"", "i1", "i2"}).Draw(t, "instance"),
	}
	for i := range n {
		a := &Attachment{
			ID:           string(rune('a' + i)),
			VolumeID:     v.ID,
			AttachStatus: rapid.SampledFrom(liveAttach).Draw(t, "att_status"),
			InstanceUUID: rapid.SampledFrom([]string{"i1", "i2", "i3"}).Draw(t, "att_instance"),
		}
		if rapid.Bool().Draw(t, "att_conn") {
			a.ConnectionInfo = &ConnectionInfo{DriverVolumeType: DriverFile}
		}
		req.Attachments = append(req.Attachments, a)
	}
	if n > 0 && rapid.Bool().Draw(t, "has_target") {
		req.Attachment = req.Attachments[rapid.IntRange(0, n-1).Draw(t, "target")]
	}
	return req
}

// rowFor finds the described row for (state, event), independently of the
// table's own index.
func rowFor(d fsm.Description, state, event string) (fsm.DescribedRow, bool) {
	for _, r := range d.Transitions {
		if r.Event == event && slices.Contains(r.From, state) {
			return r, true
		}
	}
	return fsm.DescribedRow{}, false
}

// checkStep asserts the two table properties for one step and returns the
// state after it.
func checkStep[S ~string, E ~string](t *rapid.T, tbl *fsm.Table[S, E, *Request], d fsm.Description, state S, event E, req *Request) S {
	to, err := tbl.Next(state, event, req)
	fired, ferr := tbl.Fire(context.Background(), state, event, req)
	if (err == nil) != (ferr == nil) || fired != to {
		t.Fatalf("%s: Next and Fire disagree on %s from %s: (%s, %v) vs (%s, %v)", d.Name, event, state, to, err, fired, ferr)
	}
	row, hasRow := rowFor(d, string(state), string(event))
	if err == nil {
		// Invariant: an accepted event moves exactly along the row for
		// (state, event), to one of its targets.
		if !hasRow {
			t.Fatalf("%s: %s from %s accepted without a row", d.Name, event, state)
		}
		if !row.Leads(string(state), string(to)) {
			t.Fatalf("%s: %s from %s went to %s, the row says %v", d.Name, event, state, to, row.Targets(string(state)))
		}
		return to
	}
	// Invariant: a refused event leaves the state unchanged and names the rule
	// that refused it (a guard of the row, or no_transition when no row
	// exists), carrying an upstream error kind with a 4xx status.
	if to != state {
		t.Fatalf("%s: refused %s moved %s to %s", d.Name, event, state, to)
	}
	var refused *fsm.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("%s: refusal is not an *fsm.RefusedError: %v", d.Name, err)
	}
	if hasRow == (refused.Rule == fsm.RuleNoTransition) || (hasRow && !slices.Contains(row.Guards, refused.Rule)) {
		t.Fatalf("%s: refusal of %s from %s names rule %q (row found: %v, guards %v)", d.Name, event, state, refused.Rule, hasRow, row.Guards)
	}
	var domain *Error
	if !errors.As(err, &domain) || domain.HTTPStatus() < 400 || domain.HTTPStatus() > 499 {
		t.Fatalf("%s: refusal carries no upstream 4xx error: %v", d.Name, err)
	}
	return state
}

// TestStatusTableProperty drives random event sequences through the
// volume.status table, keeping the subject's status in step with the state.
func TestStatusTableProperty(t *testing.T) {
	d := statusTable.Describe()
	events := statusTable.Events()
	rapid.Check(t, func(t *rapid.T) {
		req := genRequest(t)
		state := req.Volume.Status
		for range rapid.IntRange(1, 30).Draw(t, "steps") {
			e := rapid.SampledFrom(events).Draw(t, "event")
			state = checkStep(t, statusTable, d, state, e, req)
			if state == statusTable.Removed() {
				return // delete_done removed the record
			}
			req.Volume.Status = state
		}
	})
}

// TestAttachTableProperty drives random event sequences through the
// volume.attach_status table for one attachment.
func TestAttachTableProperty(t *testing.T) {
	d := attachTable.Describe()
	events := attachTable.Events()
	rapid.Check(t, func(t *rapid.T) {
		req := genRequest(t)
		a := &Attachment{ID: "x", VolumeID: req.Volume.ID, AttachStatus: rapid.SampledFrom(AttachStatuses).Draw(t, "start")}
		req.Attachment = a
		state := a.AttachStatus
		for range rapid.IntRange(1, 30).Draw(t, "steps") {
			e := rapid.SampledFrom(events).Draw(t, "event")
			state = checkStep(t, attachTable, d, state, e, req)
			a.AttachStatus = state
		}
	})
}

// TestDeriveStatusProperty checks DeriveStatus against REFERENCE section 1.
func TestDeriveStatusProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		atts := rapid.SliceOfN(rapid.SampledFrom(AttachStatuses), 0, 6).Draw(t, "attachments")
		current := rapid.SampledFrom(Statuses).Draw(t, "current")
		migration := rapid.SampledFrom([]string{"", "migrating", "starting", MigrationSuccess, MigrationError}).Draw(t, "migration")
		st, as := DeriveStatus(current, migration, atts)

		live := func(s AttachStatus) bool {
			return slices.Contains(atts, s)
		}
		holding := (migration == "" && current == StatusUploading) ||
			(migration != "" && migration != MigrationSuccess && migration != MigrationError)
		anyActive := live(AttachAttached) || live(AttachAttaching) || live(AttachReserved)

		// The summary attach status is the highest-precedence live status:
		// attached > attaching > reserved, else detached.
		want := AttachDetached
		switch {
		case live(AttachAttached):
			want = AttachAttached
		case live(AttachAttaching):
			want = AttachAttaching
		case live(AttachReserved):
			want = AttachReserved
		}
		if as != want {
			t.Fatalf("attach status %s, want %s for %v", as, want, atts)
		}
		// The volume is in-use exactly when some non-error, non-deleted
		// attachment is attached (unless a migration or upload holds it).
		if !holding && (st == StatusInUse) != live(AttachAttached) {
			t.Fatalf("status %s for %v", st, atts)
		}
		// The volume is available exactly when no attachment is active
		// (error_*, detached and deleted ones never count), unless a
		// migration or upload holds its status.
		if !holding && (st == StatusAvailable) != !anyActive {
			t.Fatalf("status %s for %v (active %v)", st, atts, anyActive)
		}
		// attaching and reserved are copied from the summary attach status.
		if as == AttachAttaching && st != StatusAttaching || as == AttachReserved && st != StatusReserved {
			t.Fatalf("status %s with attach status %s", st, as)
		}
		// While a migration or upload is in progress and nothing is active,
		// the status is left as it was.
		if holding && !anyActive && st != current {
			t.Fatalf("status %s, want %s held by migration %q", st, current, migration)
		}
		// Error, detached and deleted attachments never change the result,
		// and neither does the order of the attachments.
		var kept []AttachStatus
		for _, a := range atts {
			if a != AttachDetached && a != AttachDeleted && !strings.HasPrefix(string(a), "error_") {
				kept = append(kept, a)
			}
		}
		slices.Reverse(kept)
		if st2, as2 := DeriveStatus(current, migration, kept); st2 != st || as2 != as {
			t.Fatalf("ignored attachments changed the result: %s/%s vs %s/%s", st, as, st2, as2)
		}
	})
}
