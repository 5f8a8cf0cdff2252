package openstack_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/volattach/volattach/adapters/etcd/etcdtest"
)

// PUT os-volume_attachments at 2.85 changes delete_on_termination and
// nothing else (nova's _update_volume_regular): the other fields may only
// repeat the attachment's (400 with nothing written), a different volumeId
// is a swap, which volattach does not do (501, nothing written), and below
// 2.85 a PUT is a swap too, for admins only (403). The guest keeps its disk
// throughout.
func TestUpdateVolumeAttachmentDeleteOnTermination(t *testing.T) {
	s := newStack(t, nil)
	v, other := s.volume("p1", false), s.volume("p1", false)
	inst := s.server("p1")
	path := "/compute/v2.1/servers/" + inst.UUID + "/os-volume_attachments"
	if r := s.do("POST", path, "u1:p1", fmt.Sprintf(`{"volumeAttachment": {"volumeId": %q}}`, v.ID)); r.status != http.StatusOK {
		t.Fatalf("attach: %d %s", r.status, r.body)
	}
	mv := []string{"OpenStack-API-Version", "compute 2.85"}
	show := func() string {
		r := s.do("GET", path+"/"+v.ID, "u1:p1", "", mv...)
		if r.status != http.StatusOK {
			t.Fatalf("show: %d %s", r.status, r.body)
		}
		return string(r.body)
	}
	if !strings.Contains(show(), `"delete_on_termination":false`) {
		t.Fatalf("before the update: %s", show())
	}

	before := etcdtest.Revision(t)
	for _, c := range []struct {
		name, token, body string
		headers           []string
		status            int
	}{
		{"device differs", "u1:p1", `{"volumeAttachment": {"volumeId": %q, "device": "/dev/sdz"}}`, mv, 400},
		{"tag differs", "u1:p1", `{"volumeAttachment": {"volumeId": %q, "tag": "x"}}`, mv, 400},
		{"id differs", "u1:p1", `{"volumeAttachment": {"volumeId": %q, "id": "nope"}}`, mv, 400},
		{"not a boolean", "u1:p1", `{"volumeAttachment": {"volumeId": %q, "delete_on_termination": "maybe"}}`, mv, 400},
		{"unknown field", "u1:p1", `{"volumeAttachment": {"volumeId": %q, "bus": "scsi"}}`, mv, 400},
		{"swap below 2.85, member", "u1:p1", `{"volumeAttachment": {"volumeId": %q}}`, []string{"OpenStack-API-Version", "compute 2.84"}, 403},
		{"swap at 2.85, admin", "admin:p1", `{"volumeAttachment": {"volumeId": "` + other.ID + `"}}`, mv, 501},
	} {
		body := c.body
		if strings.Contains(body, "%q") {
			body = fmt.Sprintf(body, v.ID)
		}
		if r := s.do("PUT", path+"/"+v.ID, c.token, body, c.headers...); r.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.body, c.status)
		}
	}
	if rev := etcdtest.Revision(t); rev != before {
		t.Errorf("refused updates moved etcd from revision %d to %d", before, rev)
	}

	body := fmt.Sprintf(`{"volumeAttachment": {"volumeId": %q, "serverId": %q, "delete_on_termination": true}}`, v.ID, inst.UUID)
	if r := s.do("PUT", path+"/"+v.ID, "u1:p1", body, mv...); r.status != http.StatusAccepted || len(r.body) != 0 {
		t.Fatalf("update: %d %q, want 202 and no body", r.status, r.body)
	}
	if got := show(); !strings.Contains(got, `"delete_on_termination":true`) {
		t.Errorf("after the update: %s", got)
	}
	if d := s.guestDisks(inst.UUID); len(d) != 1 || d[0] != v.ID {
		t.Errorf("guest disks %v, want the volume's", d)
	}
}
