package node_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// TestStartRefusesConfig: a Config with no backend, or with a data
// directory for an embedded server beside an external cluster, is
// ErrInvalidConfig, and nothing is started.
func TestStartRefusesConfig(t *testing.T) {
	t.Parallel()
	cases := map[string]node.Config{
		"no storage backend": {Host: "h"},
		"data dir with an external cluster": {Host: "h", File: &file.Config{Dir: t.TempDir()},
			Etcd: node.EtcdConfig{DataDir: t.TempDir(), Client: &etcd.ClientConfig{Endpoints: []string{"http://127.0.0.1:1"}}}},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			if n, err := node.Start(testCtx(t), cfg); !errors.Is(err, node.ErrInvalidConfig) {
				if n != nil {
					n.Close(context.Background())
				}
				t.Fatalf("Start: %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// TestEmbeddedEtcdKeepsItsDataDir: with Etcd.DataDir the embedded server
// keeps its data there across Close, so a node started again on it finds
// the volumes it had; Close is idempotent. (No libvirtd needed: the
// adapter connects on first use.)
func TestEmbeddedEtcdKeepsItsDataDir(t *testing.T) {
	t.Parallel()
	testenv.NeedCommand(t, "qemu-img")
	dataDir := filepath.Join(t.TempDir(), "etcd")
	volumes := t.TempDir()
	cfg := node.Config{
		Host: "embedded-test",
		Etcd: node.EtcdConfig{DataDir: dataDir},
		File: &file.Config{Dir: volumes},
		Libvirt: node.LibvirtConfig{Options: []libvirt.Option{
			libvirt.WithInitiatorFile(""), libvirt.WithStateDir(t.TempDir()),
		}},
	}
	ctx := testCtx(t)
	n, err := node.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if len(n.Endpoints()) == 0 || n.Host() != "embedded-test" {
		t.Fatalf("endpoints %v, host %q", n.Endpoints(), n.Host())
	}
	v, err := n.Volumes().CreateVolume(ctx, volume.VolumeSpec{Size: 1, SizeBytes: 1 << 20})
	if err != nil {
		n.Close(ctx)
		t.Fatalf("create volume: %v", err)
	}
	first := n.Close(ctx)
	if first != nil {
		t.Fatalf("Close: %v", first)
	}
	if again := n.Close(ctx); again != first {
		t.Fatalf("second Close: %v, want the first's %v", again, first)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "member")); err != nil {
		t.Fatalf("data dir not kept: %v", err)
	}

	n, err = node.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start again: %v", err)
	}
	defer n.Close(ctx)
	got, err := n.Volumes().GetVolume(ctx, v.ID)
	if err != nil || got.Status != volume.StatusAvailable {
		t.Fatalf("volume after the restart: %+v, %v; want it available", got, err)
	}
}

// TestRegisterGuest: a guest made outside volattach is recorded as an
// instance with the domain's UUID, on the node's host, launched, with the
// vm_state its power state maps to, reached along the compute.vm_state
// table from building (the rows are its history); by name or by UUID;
// registering again returns the same record untouched.
func TestRegisterGuest(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := testCtx(t)
	a := s.n.Libvirt()
	running := libvirttest.Guest(t, a, true)
	paused := libvirttest.Guest(t, a, true)
	if err := a.PauseGuest(ctx, paused); err != nil {
		t.Fatal(err)
	}
	stopped := libvirttest.Guest(t, a, false)

	cases := []struct {
		uuid    string
		want    compute.VMState
		history []string // events, in order
	}{
		{running, compute.VMActive, []string{"build"}},
		{paused, compute.VMPaused, []string{"build", "pause"}},
		{stopped, compute.VMStopped, []string{"build", "stop"}},
	}
	for _, tc := range cases {
		before := time.Now().UTC()
		inst, err := s.n.RegisterGuest(ctx, tc.uuid)
		if err != nil {
			t.Fatalf("RegisterGuest(%s): %v", tc.uuid, err)
		}
		if inst.UUID != tc.uuid || inst.VMState != tc.want || inst.Host != s.n.Host() ||
			inst.LaunchedAt.Before(before) || inst.RootDeviceName != node.DefaultRootDeviceName ||
			inst.AvailabilityZone != node.DefaultAvailabilityZone || inst.TaskState != compute.TaskNone {
			t.Fatalf("registered %+v; want uuid %s, %s, host %s, launched, root %s", inst, tc.uuid, tc.want, s.n.Host(), node.DefaultRootDeviceName)
		}
		hist, err := s.n.Store().History(ctx, inst.Key())
		if err != nil {
			t.Fatal(err)
		}
		state := string(compute.VMBuilding)
		if len(hist) != len(tc.history) {
			t.Fatalf("history %+v, want events %v", hist, tc.history)
		}
		for i, tr := range hist {
			if tr.Table != compute.VMStateTableName || tr.Event != tc.history[i] || tr.From != state {
				t.Fatalf("history entry %d: %+v, want %s from %s", i, tr, tc.history[i], state)
			}
			// Every entry is a row of the vm_state table.
			if _, ok := compute.VMStateTable.Row(compute.VMState(tr.From), compute.Action(tr.Event)); !ok {
				t.Fatalf("history entry %+v is no row of %s", tr, compute.VMStateTableName)
			}
			state = tr.To
		}
		if state != string(tc.want) {
			t.Fatalf("history ends in %s, want %s", state, tc.want)
		}

		again, err := s.n.RegisterGuest(ctx, tc.uuid)
		if err != nil || again.Revision() != inst.Revision() || again.VMState != inst.VMState {
			t.Fatalf("registering again: %+v, %v; want the record at revision %d", again, err, inst.Revision())
		}
	}

	// By name: the same record as by UUID.
	name := libvirttest.GuestName(t)
	uuid, err := a.DefineGuest(ctx, libvirt.TestGuest(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), libvirttest.CleanupTimeout)
		defer cancel()
		if err := a.RemoveGuest(ctx, uuid); err != nil {
			t.Errorf("remove guest %s: %v", name, err)
		}
	})
	byName, err := s.n.RegisterGuest(ctx, name)
	if err != nil || byName.UUID != uuid {
		t.Fatalf("RegisterGuest(%q) = %+v, %v; want instance %s", name, byName, err, uuid)
	}
	stored := &compute.Instance{UUID: uuid}
	if err := s.n.Store().Get(ctx, stored); err != nil || stored.Revision() != byName.Revision() {
		t.Fatalf("stored record %+v, %v", stored, err)
	}
}
