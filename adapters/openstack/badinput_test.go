package openstack_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
)

// Every refused request answers with its status and upstream's error body
// naming the rule broken, and writes nothing: the etcd revision is
// unchanged and no guest has gained a disk.
func TestBadInputAndIsolationWriteNothing(t *testing.T) {
	s := newStack(t, nil)
	v1 := s.volume("p1", false)
	v2 := s.volume("p2", false)
	inst := s.server("p1")
	other := s.server("p2")
	shelved := s.server("p1")
	s.setInstance(shelved.UUID, func(i *compute.Instance) { i.VMState = compute.VMShelved })

	attachBody := func(vol string) string {
		return fmt.Sprintf(`{"volumeAttachment": {"volumeId": %q}}`, vol)
	}
	novaAttach := "/compute/v2.1/servers/" + inst.UUID + "/os-volume_attachments"
	cinder := "/volume/v3/p1"
	big := `{"volumeAttachment": {"volumeId": "` + v1.ID + `", "device": "` + strings.Repeat("x", 200000) + `"}}`

	cases := []struct {
		name, method, path, token, body string
		headers                         []string
		status                          int
		kind, message                   string
	}{
		{"malformed JSON", "POST", novaAttach, "u1:p1", `{"volumeAttachment": {`, nil, 400, "badRequest", "Malformed request body"},
		{"trailing data", "POST", novaAttach, "u1:p1", attachBody(v1.ID) + ` {}`, nil, 400, "badRequest", "Malformed request body"},
		{"not an object", "POST", novaAttach, "u1:p1", `[1]`, nil, 400, "badRequest", "must be a JSON object"},
		{"unknown field", "POST", novaAttach, "u1:p1", `{"volumeAttachment": {"volumeId": "` + v1.ID + `", "bogus": 1}}`, nil, 400, "badRequest", "Additional properties are not allowed ('bogus' was unexpected)"},
		{"unknown top-level field", "POST", novaAttach, "u1:p1", `{"volumeAttachment": {"volumeId": "` + v1.ID + `"}, "x": 1}`, nil, 400, "badRequest", "('x' was unexpected)"},
		{"tag before 2.49", "POST", novaAttach, "u1:p1", `{"volumeAttachment": {"volumeId": "` + v1.ID + `", "tag": "a"}}`, []string{"OpenStack-API-Version", "compute 2.48"}, 400, "badRequest", "('tag' was unexpected)"},
		{"delete_on_termination before 2.79", "POST", novaAttach, "u1:p1", `{"volumeAttachment": {"volumeId": "` + v1.ID + `", "delete_on_termination": true}}`, []string{"OpenStack-API-Version", "compute 2.78"}, 400, "badRequest", "('delete_on_termination' was unexpected)"},
		{"tag with a slash", "POST", novaAttach, "u1:p1", `{"volumeAttachment": {"volumeId": "` + v1.ID + `", "tag": "a/b"}}`, []string{"OpenStack-API-Version", "compute 2.49"}, 400, "badRequest", "Invalid input for field/attribute tag"},
		{"volumeId missing", "POST", novaAttach, "u1:p1", `{"volumeAttachment": {}}`, nil, 400, "badRequest", "'volumeId' is a required property"},
		{"volumeId empty", "POST", novaAttach, "u1:p1", attachBody(""), nil, 400, "badRequest", "is not a 'uuid'"},
		{"volumeId not a uuid", "POST", novaAttach, "u1:p1", attachBody("nope"), nil, 400, "badRequest", "is not a 'uuid'"},
		{"volumeId not a string", "POST", novaAttach, "u1:p1", `{"volumeAttachment": {"volumeId": 7}}`, nil, 400, "badRequest", "is not of type 'string'"},
		{"bad device path", "POST", novaAttach, "u1:p1", `{"volumeAttachment": {"volumeId": "` + v1.ID + `", "device": "/dev/sd!"}}`, nil, 400, "badRequest", "Invalid input for field/attribute device"},
		{"wrong content type", "POST", novaAttach, "u1:p1", attachBody(v1.ID), []string{"Content-Type", "text/plain"}, 415, "badMediaType", "Unsupported Content-Type"},
		{"body over the size limit", "POST", novaAttach, "u1:p1", big, nil, 413, "overLimit", "Request is too large."},
		{"microversion above the maximum", "POST", novaAttach, "u1:p1", attachBody(v1.ID), []string{"OpenStack-API-Version", "compute 2.999"}, 406, "computeFault", "Version 2.999 is not supported by the API"},
		{"legacy microversion header below the minimum", "GET", novaAttach, "u1:p1", "", []string{"X-OpenStack-Nova-API-Version", "2.0"}, 406, "computeFault", "Minimum is 2.1"},
		{"malformed microversion", "GET", novaAttach, "u1:p1", "", []string{"OpenStack-API-Version", "compute two"}, 400, "badRequest", "is of invalid format"},
		{"another project's server", "POST", novaAttach, "u2:p2", attachBody(v2.ID), nil, 404, "itemNotFound", "Instance " + inst.UUID + " could not be found."},
		{"another project's server, listed", "GET", novaAttach, "u2:p2", "", nil, 404, "itemNotFound", "could not be found"},
		{"another project's volume", "POST", novaAttach, "u1:p1", attachBody(v2.ID), nil, 404, "itemNotFound", "Volume " + v2.ID + " could not be found."},
		{"another project's volume, shown", "GET", "/volume/v3/p2/volumes/" + v1.ID, "u2:p2", "", nil, 404, "itemNotFound", "could not be found"},
		{"another project in the URL", "GET", cinder + "/volumes/" + v1.ID, "u2:p2", "", nil, 400, "badRequest", "Malformed request url"},
		{"shelved below 2.20", "POST", "/compute/v2.1/servers/" + shelved.UUID + "/os-volume_attachments", "u1:p1", attachBody(v1.ID), []string{"OpenStack-API-Version", "compute 2.19"}, 409, "conflictingRequest", "while it is in vm_state shelved"},
		{"shelved detach below 2.20", "DELETE", "/compute/v2.1/servers/" + shelved.UUID + "/os-volume_attachments/" + v1.ID, "u1:p1", "", nil, 409, "conflictingRequest", "Cannot 'detach_volume'"},
		{"member forcing a detach", "POST", cinder + "/volumes/" + v1.ID + "/action", "u1:p1", `{"os-force_detach": {}}`, nil, 403, "forbidden", "PolicyNotAuthorized"},
		{"member resetting a status", "POST", cinder + "/volumes/" + v1.ID + "/action", "u1:p1", `{"os-reset_status": {"status": "error"}}`, nil, 403, "forbidden", "PolicyNotAuthorized"},
		{"two actions", "POST", cinder + "/volumes/" + v1.ID + "/action", "u1:p1", `{"os-reserve": null, "os-unreserve": null}`, nil, 400, "badRequest", "no action or more than one"},
		{"unknown action", "POST", cinder + "/volumes/" + v1.ID + "/action", "u1:p1", `{"os-extend": {"new_size": 2}}`, nil, 400, "badRequest", "There is no such action: os-extend"},
		{"unknown action member", "POST", cinder + "/volumes/" + v1.ID + "/action", "u1:p1", `{"os-attach": {"instance_uuid": "` + inst.UUID + `", "mountpoint": "/dev/sdb", "x": 1}}`, nil, 400, "badRequest", "('x' was unexpected)"},
		{"unknown connector member", "POST", cinder + "/volumes/" + v1.ID + "/action", "u1:p1", `{"os-initialize_connection": {"connector": {"host": "h", "secret_sauce": 1}}}`, nil, 400, "badRequest", "secret_sauce"},
		{"bad attach mode", "POST", cinder + "/volumes/" + v1.ID + "/action", "u1:p1", `{"os-attach": {"instance_uuid": "` + inst.UUID + `", "mountpoint": "/dev/sdb", "mode": "xx"}}`, nil, 400, "badRequest", "mode"},
		{"volume size zero", "POST", cinder + "/volumes", "u1:p1", `{"volume": {"size": 0}}`, nil, 400, "badRequest", "less than the minimum of 1"},
		{"volume size not a number", "POST", cinder + "/volumes", "u1:p1", `{"volume": {"size": "big"}}`, nil, 400, "badRequest", "is not of type 'integer'"},
		{"volume unknown field", "POST", cinder + "/volumes", "u1:p1", `{"volume": {"size": 1, "flavor": "gold"}}`, nil, 400, "badRequest", "('flavor' was unexpected)"},
		{"volume from a snapshot", "POST", cinder + "/volumes", "u1:p1", `{"volume": {"size": 1, "snapshot_id": "` + v1.ID + `"}}`, nil, 400, "badRequest", "snapshot_id must be null"},
		{"attachments before 3.27", "POST", cinder + "/attachments", "u1:p1", `{"attachment": {"volume_uuid": "` + v1.ID + `", "instance_uuid": "` + inst.UUID + `"}}`, []string{"OpenStack-API-Version", "volume 3.26"}, 404, "itemNotFound", "could not be found"},
		{"attachment unknown field", "POST", cinder + "/attachments", "u1:p1", `{"attachment": {"volume_uuid": "` + v1.ID + `", "instance_uuid": "` + inst.UUID + `", "host": "x"}}`, []string{"OpenStack-API-Version", "volume 3.27"}, 400, "badRequest", "('host' was unexpected)"},
		{"attachment mode before 3.54", "POST", cinder + "/attachments", "u1:p1", `{"attachment": {"volume_uuid": "` + v1.ID + `", "instance_uuid": "` + inst.UUID + `", "mode": "ro"}}`, []string{"OpenStack-API-Version", "volume 3.50"}, 400, "badRequest", "('mode' was unexpected)"},
		{"attachment of another project's volume", "POST", "/volume/v3/p2/attachments", "u2:p2", `{"attachment": {"volume_uuid": "` + v1.ID + `", "instance_uuid": "` + other.UUID + `"}}`, []string{"OpenStack-API-Version", "volume 3.27"}, 404, "itemNotFound", "could not be found"},
		{"unknown route", "GET", "/compute/v2.1/flavors", "u1:p1", "", nil, 404, "itemNotFound", "could not be found"},
	}
	before := etcdtest.Revision(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.do(c.method, c.path, c.token, c.body, c.headers...)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			kind, code, msg := r.fault(t)
			if kind != c.kind || code != c.status || !strings.Contains(msg, c.message) {
				t.Errorf("error body %s, want %s %d containing %q", r.body, c.kind, c.status, c.message)
			}
			if id := r.header.Get("X-Openstack-Request-Id"); !strings.HasPrefix(id, "req-") {
				t.Errorf("X-Openstack-Request-Id %q", id)
			}
			if rev := etcdtest.Revision(t); rev != before {
				t.Errorf("etcd revision %d after the refusal, want %d: something was written", rev, before)
			}
			for _, g := range []string{inst.UUID, other.UUID, shelved.UUID} {
				if d := s.guestDisks(g); len(d) != 0 {
					t.Errorf("guest %s has volume disks %v after a refusal", g, d)
				}
			}
		})
	}
}

// No token, or one NoAuth cannot parse, is 401 with keystonemiddleware's
// body, and writes nothing.
func TestNoTokenIsUnauthorized(t *testing.T) {
	s := newStack(t, nil)
	before := etcdtest.Revision(t)
	for _, tok := range []string{"", ":p1", "u1:"} {
		r := s.do("POST", "/volume/v3/p1/volumes", tok, `{"volume": {"size": 1}}`)
		if r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), "requires authentication") {
			t.Errorf("token %q: %d %s, want 401", tok, r.status, r.body)
		}
	}
	if rev := etcdtest.Revision(t); rev != before {
		t.Errorf("etcd revision %d, want %d", rev, before)
	}
}

// Version discovery needs no token and names the microversion range.
func TestVersionDiscovery(t *testing.T) {
	s := newStack(t, nil)
	for _, c := range []struct {
		path   string
		status int
		want   []string
	}{
		{"/compute/", 200, []string{`"id":"v2.1"`, `"version":"2.101"`, `"min_version":"2.1"`}},
		{"/compute/v2.1/", 200, []string{`"version":{`, `"id":"v2.1"`}},
		{"/volume/", 300, []string{`"id":"v3.0"`, `"version":"3.60"`, `"min_version":"3.0"`}},
		{"/volume/v3/", 200, []string{`"id":"v3.0"`}},
	} {
		r := s.do("GET", c.path, "", "")
		if r.status != c.status {
			t.Errorf("%s: %d, want %d", c.path, r.status, c.status)
		}
		for _, w := range c.want {
			if !strings.Contains(string(r.body), w) {
				t.Errorf("%s: %s lacks %s", c.path, r.body, w)
			}
		}
	}
	r := s.do("GET", "/compute/v2.1/servers", "u1:p1", "", "OpenStack-API-Version", "compute latest")
	if got := r.header.Get("OpenStack-API-Version"); got != "compute 2.101" {
		t.Errorf("OpenStack-API-Version %q, want compute 2.101", got)
	}
	if !slices.Contains(r.header.Values("Vary"), "OpenStack-API-Version") {
		t.Errorf("Vary %v", r.header.Values("Vary"))
	}
}

// A user may not remove, through the volume API, an attachment an
// instance still uses (attachment_deletion_allowed): DELETE /attachments,
// os-detach and os-terminate_connection are 409 with nothing written, and
// the guest keeps its disk.
func TestUserCannotRemoveAnAttachmentAServerUses(t *testing.T) {
	s := newStack(t, nil)
	v := s.volume("p1", false)
	inst := s.server("p1")
	r := s.do("POST", "/compute/v2.1/servers/"+inst.UUID+"/os-volume_attachments", "u1:p1",
		fmt.Sprintf(`{"volumeAttachment": {"volumeId": %q}}`, v.ID))
	if r.status != http.StatusOK {
		t.Fatalf("attach: %d %s", r.status, r.body)
	}
	atts, err := s.n.Volumes().Attachments(testCtx(t), v.ID)
	if err != nil || len(atts) != 1 {
		t.Fatalf("attachments %v %v", atts, err)
	}
	before := etcdtest.Revision(t)
	for _, c := range []struct{ method, path, body string }{
		{"DELETE", "/volume/v3/p1/attachments/" + atts[0].ID, ""},
		{"POST", "/volume/v3/p1/volumes/" + v.ID + "/action", `{"os-detach": {"attachment_id": "` + atts[0].ID + `"}}`},
		{"POST", "/volume/v3/p1/volumes/" + v.ID + "/action", `{"os-terminate_connection": {"connector": {"host": "` + s.n.Host() + `"}}}`},
	} {
		r := s.do(c.method, c.path, "u1:p1", c.body, "OpenStack-API-Version", "volume 3.27")
		if r.status != http.StatusConflict {
			t.Errorf("%s %s: %d %s, want 409", c.method, c.path, r.status, r.body)
			continue
		}
		if kind, _, msg := r.fault(t); kind != "conflictingRequest" || !strings.Contains(msg, "attachment_deletion_allowed") && !strings.Contains(msg, "ConflictNovaUsingAttachment") {
			t.Errorf("%s %s: error body %s", c.method, c.path, r.body)
		}
	}
	if rev := etcdtest.Revision(t); rev != before {
		t.Errorf("etcd revision %d, want %d", rev, before)
	}
	if d := s.guestDisks(inst.UUID); len(d) != 1 || d[0] != v.ID {
		t.Errorf("guest disks %v, want the volume's", d)
	}
}
