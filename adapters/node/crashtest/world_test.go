package crashtest

import (
	"slices"
	"strings"
	"testing"

	"github.com/volattach/volattach/volume"
)

// The status invariant, judged alone: a volume in error (a failed
// creation, or one the reconciler found left in creating) is free like an
// available one, and a volume left in creating is a violation.
func TestVolumeStatusInvariant(t *testing.T) {
	att := func(s volume.AttachStatus) []*volume.Attachment {
		return []*volume.Attachment{{ID: "a", VolumeID: "v", InstanceUUID: "i", AttachStatus: s}}
	}
	tests := []struct {
		status    volume.Status
		atts      []*volume.Attachment
		violation bool
	}{
		{volume.StatusAvailable, nil, false},
		{volume.StatusError, nil, false},
		{volume.StatusError, att(volume.AttachErrorAttaching), false},
		{volume.StatusError, att(volume.AttachReserved), true},
		{volume.StatusError, att(volume.AttachAttached), true},
		{volume.StatusCreating, nil, true},
		{volume.StatusInUse, att(volume.AttachAttached), false},
		{volume.StatusAvailable, att(volume.AttachReserved), true},
	}
	for _, tc := range tests {
		w := &World{
			volumes:     map[string]*volume.Volume{"v": {ID: "v", Status: tc.status}},
			attachments: map[string][]*volume.Attachment{"v": tc.atts},
		}
		got := slices.ContainsFunc(w.Violations(), func(s string) bool { return strings.HasPrefix(s, "volume v is ") })
		if got != tc.violation {
			t.Errorf("volume %s with %d attachments: violation %v, want %v (%q)", tc.status, len(tc.atts), got, tc.violation, w.Violations())
		}
	}
}
