package volume

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestPropertyExactlyOneDerivedAlternative: on any subject, exactly one
// alternative of every volume.status row with alternatives applies (a
// guarded one or the fallback), and the one chosen is the status
// DeriveStatus gives, or the status unchanged when no alternative names it.
func TestPropertyExactlyOneDerivedAlternative(t *testing.T) {
	var rows []int
	for i, r := range statusTable.Rows() {
		if len(r.Alternatives) > 0 {
			rows = append(rows, i)
		}
	}
	if len(rows) < 5 {
		t.Fatalf("%d rows with alternatives, want unreserve, detach, force_detach, attachment_delete and recompute_status", len(rows))
	}
	all := statusTable.Rows()
	rapid.Check(t, func(t *rapid.T) {
		req := genRequest(t)
		r := all[rapid.SampledFrom(rows).Draw(t, "row")]
		from := rapid.SampledFrom(r.From).Draw(t, "from")
		req.Volume.Status = from
		holding, fallback := 0, false
		for _, a := range r.Alternatives {
			switch {
			case a.IsFallback():
				fallback = true
			case a.When.Check(req) == nil:
				holding++
			}
		}
		if holding > 1 || (holding == 0 && !fallback) {
			t.Fatalf("%s from %s: %d alternatives apply (fallback %v)", r.Event, from, holding, fallback)
		}
		derived, _ := req.derived()
		want := from
		for _, target := range r.Targets(from) {
			if target == derived {
				want = derived
			}
		}
		c, err := statusTable.Choose(from, r.Event, req)
		if err == nil && c.To != want {
			t.Fatalf("%s from %s: chose %s (by %q), the attachments derive %s", r.Event, from, c.To, c.When, derived)
		}
		if err != nil && !slices.ContainsFunc(r.Guards, func(g Guard) bool { return g.Check(req) != nil }) {
			t.Fatalf("%s from %s refused without a rule refusing: %v", r.Event, from, err)
		}
	})
}
