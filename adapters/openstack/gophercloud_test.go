package openstack_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/attachments"
	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/volumes"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/volumeattach"

	"github.com/volattach/volattach/adapters/etcd/etcdtest"
)

// createOpts is volumes.CreateOpts with Cinder's (deprecated but
// accepted) multiattach member, which gophercloud does not send.
type createOpts struct {
	Size        int    `json:"size"`
	Name        string `json:"name,omitempty"`
	Multiattach bool   `json:"multiattach,omitempty"`
}

func (o createOpts) ToVolumeCreateMap() (map[string]any, error) {
	return gophercloud.BuildRequestBody(o, "volume")
}

// gopherVolume creates a 1 GiB volume through gophercloud and deletes it
// (through the volume side) when the test ends.
func gopherVolume(t *testing.T, s *stack, bs *gophercloud.ServiceClient, multiattach bool) *volumes.Volume {
	t.Helper()
	v, err := volumes.Create(testCtx(t), bs, createOpts{Size: 1, Name: t.Name(), Multiattach: multiattach}, nil).Extract()
	if err != nil {
		t.Fatalf("volumes.Create: %v", err)
	}
	s.deleteVolumeAtEnd(v.ID)
	if v.Status != "available" {
		t.Fatalf("new volume status %s", v.Status)
	}
	return v
}

func wantDisks(t *testing.T, s *stack, server string, want ...string) {
	t.Helper()
	got := s.guestDisks(server)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("guest %s volume disks %v, want %v", server, got, want)
	}
}

// The whole legacy flow through gophercloud against the real Keystone:
// create, attach, list, show, detach, delete, the guest's disks checked
// after each step that changes them.
func TestGophercloudAttachDetach(t *testing.T) {
	k := needKeystone(t)
	s := newKeystoneStack(t, k)
	provider, project := k.login(t, "demo", "demo")
	nova, bs := clients(t, provider)
	v := gopherVolume(t, s, bs, false)
	inst := s.server(project)

	srv, err := servers.Get(testCtx(t), nova, inst.UUID).Extract()
	if err != nil || srv.ID != inst.UUID || srv.Status != "ACTIVE" {
		t.Fatalf("servers.Get: %+v %v", srv, err)
	}
	pages, err := servers.List(nova, nil).AllPages(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	all, _ := servers.ExtractServers(pages)
	if len(all) != 1 || all[0].ID != inst.UUID {
		t.Fatalf("servers.List: %+v", all)
	}

	att, err := volumeattach.Create(testCtx(t), nova, inst.UUID, volumeattach.CreateOpts{VolumeID: v.ID}).Extract()
	if err != nil {
		t.Fatalf("volumeattach.Create: %v", err)
	}
	if att.VolumeID != v.ID || att.ServerID != inst.UUID || att.Device == "" {
		t.Fatalf("attachment %+v", att)
	}
	wantDisks(t, s, inst.UUID, v.ID)

	pages, err = volumeattach.List(nova, inst.UUID).AllPages(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	list, _ := volumeattach.ExtractVolumeAttachments(pages)
	if len(list) != 1 || list[0].VolumeID != v.ID || list[0].Device != att.Device {
		t.Fatalf("volumeattach.List: %+v", list)
	}
	shown, err := volumeattach.Get(testCtx(t), nova, inst.UUID, v.ID).Extract()
	if err != nil || shown.Device != att.Device {
		t.Fatalf("volumeattach.Get: %+v %v", shown, err)
	}
	vol, err := volumes.Get(testCtx(t), bs, v.ID).Extract()
	if err != nil || vol.Status != "in-use" || len(vol.Attachments) != 1 || vol.Attachments[0].ServerID != inst.UUID {
		t.Fatalf("volume after attach: %+v %v", vol, err)
	}

	if err := volumeattach.Delete(testCtx(t), nova, inst.UUID, v.ID).ExtractErr(); err != nil {
		t.Fatalf("volumeattach.Delete: %v", err)
	}
	wantDisks(t, s, inst.UUID)
	vol, err = volumes.Get(testCtx(t), bs, v.ID).Extract()
	if err != nil || vol.Status != "available" || len(vol.Attachments) != 0 {
		t.Fatalf("volume after detach: %+v %v", vol, err)
	}
	if err := volumes.Delete(testCtx(t), bs, v.ID, nil).ExtractErr(); err != nil {
		t.Fatalf("volumes.Delete: %v", err)
	}
	if _, err := volumes.Get(testCtx(t), bs, v.ID).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Fatalf("volume after delete: %v, want 404", err)
	}
}

// The attachments API (3.27, complete 3.44) through gophercloud: create
// with a connector returns the connection, complete makes the volume
// in-use, delete makes it available again. It is the volume side only: the
// guest is not touched.
func TestGophercloudAttachmentsAPI(t *testing.T) {
	k := needKeystone(t)
	s := newKeystoneStack(t, k)
	provider, project := k.login(t, "demo", "demo")
	_, bs := clients(t, provider)
	bs.Microversion = "3.44"
	v := gopherVolume(t, s, bs, false)
	inst := s.server(project)

	a, err := attachments.Create(testCtx(t), bs, attachments.CreateOpts{
		VolumeUUID: v.ID, InstanceUUID: inst.UUID,
		Connector: map[string]any{"host": "gophercloud-host", "ip": "127.0.0.1", "initiator": "iqn.2004-10.com.example:gophercloud"},
	}).Extract()
	if err != nil {
		t.Fatalf("attachments.Create: %v", err)
	}
	if a.VolumeID != v.ID || a.Instance != inst.UUID || a.Status != "attaching" || a.ConnectionInfo["driver_volume_type"] != "iscsi" {
		t.Fatalf("attachment %+v", a)
	}
	if err := attachments.Complete(testCtx(t), bs, a.ID).ExtractErr(); err != nil {
		t.Fatalf("attachments.Complete: %v", err)
	}
	got, err := attachments.Get(testCtx(t), bs, a.ID).Extract()
	if err != nil || got.Status != "attached" {
		t.Fatalf("attachments.Get: %+v %v", got, err)
	}
	pages, err := attachments.List(bs, attachments.ListOpts{VolumeID: v.ID}).AllPages(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	list, _ := attachments.ExtractAttachments(pages)
	if len(list) != 1 || list[0].ID != a.ID {
		t.Fatalf("attachments.List: %+v", list)
	}
	vol, err := volumes.Get(testCtx(t), bs, v.ID).Extract()
	if err != nil || vol.Status != "in-use" {
		t.Fatalf("volume after complete: %+v %v", vol, err)
	}
	wantDisks(t, s, inst.UUID)
	if err := attachments.Delete(testCtx(t), bs, a.ID).ExtractErr(); err != nil {
		t.Fatalf("attachments.Delete: %v", err)
	}
	vol, err = volumes.Get(testCtx(t), bs, v.ID).Extract()
	if err != nil || vol.Status != "available" {
		t.Fatalf("volume after attachment delete: %+v %v", vol, err)
	}
}

// A multiattach volume on two servers (microversion 2.60), each guest
// seeing the disk, then detached from both.
func TestGophercloudMultiattach(t *testing.T) {
	k := needKeystone(t)
	s := newKeystoneStack(t, k)
	provider, project := k.login(t, "demo", "demo")
	nova, bs := clients(t, provider)
	v := gopherVolume(t, s, bs, true)
	a, b := s.server(project), s.server(project)

	if _, err := volumeattach.Create(testCtx(t), nova, a.UUID, volumeattach.CreateOpts{VolumeID: v.ID}).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) {
		t.Fatalf("multiattach volume at 2.1: %v, want 400", err)
	}
	nova.Microversion = "2.60"
	for _, inst := range []string{a.UUID, b.UUID} {
		if _, err := volumeattach.Create(testCtx(t), nova, inst, volumeattach.CreateOpts{VolumeID: v.ID}).Extract(); err != nil {
			t.Fatalf("attach to %s: %v", inst, err)
		}
		wantDisks(t, s, inst, v.ID)
	}
	vol, err := volumes.Get(testCtx(t), bs, v.ID).Extract()
	if err != nil || vol.Status != "in-use" || len(vol.Attachments) != 2 {
		t.Fatalf("volume on two servers: %+v %v", vol, err)
	}
	for _, inst := range []string{a.UUID, b.UUID} {
		if err := volumeattach.Delete(testCtx(t), nova, inst, v.ID).ExtractErr(); err != nil {
			t.Fatalf("detach from %s: %v", inst, err)
		}
		wantDisks(t, s, inst)
	}
	vol, err = volumes.Get(testCtx(t), bs, v.ID).Extract()
	if err != nil || vol.Status != "available" {
		t.Fatalf("volume after both detaches: %+v %v", vol, err)
	}
}

// From 2.101 the attach answers 202 with no body once queued; the
// attachment then appears and the guest gets the disk.
func TestGophercloudAsyncAttach(t *testing.T) {
	k := needKeystone(t)
	s := newKeystoneStack(t, k)
	provider, project := k.login(t, "demo", "demo")
	nova, bs := clients(t, provider)
	v := gopherVolume(t, s, bs, false)
	inst := s.server(project)
	nova.Microversion = "2.101"
	body := map[string]any{"volumeAttachment": map[string]any{"volumeId": v.ID}}
	resp, err := nova.Post(testCtx(t), nova.ServiceURL("servers", inst.UUID, "os-volume_attachments"), body, nil,
		&gophercloud.RequestOpts{OkCodes: []int{http.StatusAccepted}})
	if err != nil {
		t.Fatalf("async attach: %v", err)
	}
	resp.Body.Close()
	eventually(t, "the volume in-use after the 202", func() error {
		vol, err := volumes.Get(testCtx(t), bs, v.ID).Extract()
		if err != nil {
			return err
		}
		if vol.Status != "in-use" {
			return fmt.Errorf("%w: %s", errNotYet, vol.Status)
		}
		return nil
	})
	wantDisks(t, s, inst.UUID, v.ID)
	att, err := volumeattach.Get(testCtx(t), nova, inst.UUID, v.ID).Extract()
	if err != nil || att.Device == "" {
		t.Fatalf("attachment after async attach: %+v %v", att, err)
	}
	if err := volumeattach.Delete(testCtx(t), nova, inst.UUID, v.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	wantDisks(t, s, inst.UUID)
}

// Under Keystone: another project's server and volume are 404, a member's
// admin action 403, a bad token 401; nothing written.
func TestKeystoneIsolation(t *testing.T) {
	k := needKeystone(t)
	s := newKeystoneStack(t, k)
	demo, demoProject := k.login(t, "demo", "demo")
	alt, altProject := k.login(t, "alt", "alt")
	demoNova, demoBS := clients(t, demo)
	altNova, altBS := clients(t, alt)
	v := gopherVolume(t, s, demoBS, false)
	altVol := gopherVolume(t, s, altBS, false)
	inst := s.server(demoProject)
	altInst := s.server(altProject)

	before := etcdtest.Revision(t)
	if _, err := servers.Get(testCtx(t), altNova, inst.UUID).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Errorf("alt reading demo's server: %v, want 404", err)
	}
	if _, err := volumes.Get(testCtx(t), altBS, v.ID).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Errorf("alt reading demo's volume: %v, want 404", err)
	}
	if _, err := volumeattach.Create(testCtx(t), altNova, inst.UUID, volumeattach.CreateOpts{VolumeID: altVol.ID}).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Errorf("alt attaching to demo's server: %v, want 404", err)
	}
	if _, err := volumeattach.Create(testCtx(t), demoNova, inst.UUID, volumeattach.CreateOpts{VolumeID: altVol.ID}).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Errorf("demo attaching alt's volume: %v, want 404", err)
	}
	if err := volumes.ResetStatus(testCtx(t), demoBS, v.ID, volumes.ResetStatusOpts{Status: "error"}).ExtractErr(); !gophercloud.ResponseCodeIs(err, http.StatusForbidden) {
		t.Errorf("member resetting a status: %v, want 403", err)
	}
	pages, err := servers.List(altNova, nil).AllPages(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	list, _ := servers.ExtractServers(pages)
	if len(list) != 1 || list[0].ID != altInst.UUID {
		t.Errorf("alt's server list %+v, want only its own", list)
	}
	for _, tok := range []string{"", "not-a-token"} {
		r := s.do("GET", "/compute/v2.1/servers/"+inst.UUID, tok, "")
		if r.status != http.StatusUnauthorized {
			t.Errorf("token %q: %d, want 401", tok, r.status)
		}
	}
	if rev := etcdtest.Revision(t); rev != before {
		t.Errorf("etcd revision %d, want %d: a refusal wrote", rev, before)
	}
	wantDisks(t, s, inst.UUID)
	wantDisks(t, s, altInst.UUID)

	// The admin (admin role in demo's project) may reset it.
	admin, _ := k.login(t, "admin", "demo")
	_, adminBS := clients(t, admin)
	if err := volumes.ResetStatus(testCtx(t), adminBS, v.ID, volumes.ResetStatusOpts{Status: "available"}).ExtractErr(); err != nil {
		t.Errorf("admin resetting a status: %v", err)
	}
}
