package node_test

import (
	"bufio"
	"context"
	"errors"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// rewriting is a volume backend whose connection_info is the file
// backend's, edited: a backend that answers with a protocol the host has
// no driver for, or with fields its driver cannot use.
type rewriting struct {
	volume.Backend
	name string
	edit func(*volume.ConnectionInfo)
}

func (r *rewriting) Name() string { return r.name }

func (r *rewriting) InitializeConnection(ctx context.Context, v volume.Volume, c volume.Connector) (volume.ConnectionInfo, error) {
	info, err := r.Backend.InitializeConnection(ctx, v, c)
	if err != nil {
		return info, err
	}
	info.Data = maps.Clone(info.Data)
	r.edit(&info)
	return info, nil
}

// TestAttachBadConnectionInfo: a backend that hands the host a
// driver_volume_type it has no driver for, or connection_info its driver
// cannot use, fails the attach with the driver's error class
// (VolumeDriverNotFound, InvalidConnectionInfo: kept across the host queue
// on the compute error the API returns) and leaves nothing behind: the attach
// rolls back to an available volume with no attachment, no mapping, no
// disk in the guest and no libvirt secret.
func TestAttachBadConnectionInfo(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		edit func(*volume.ConnectionInfo)
		want string // the cause the error must name
	}{
		{"unknown driver_volume_type", func(i *volume.ConnectionInfo) { i.DriverVolumeType = "fibre_channel" },
			compute.ErrUnsupportedVolumeDriver.Error() + `: no driver for driver_volume_type "fibre_channel"`},
		{"file without a path", func(i *volume.ConnectionInfo) { delete(i.Data, volume.DataPath) },
			compute.ErrInvalidConnectionInfo.Error() + `: file connection_info field "device_path"`},
		{"iscsi portal without a port", func(i *volume.ConnectionInfo) {
			i.DriverVolumeType = volume.DriverISCSI
			i.Data = map[string]string{volume.DataTargetIQN: "iqn.2026-11.io.volattach:nothing", volume.DataTargetPortal: "127.0.0.1:iscsi", volume.DataTargetLUN: "1"}
		}, compute.ErrInvalidConnectionInfo.Error() + `: iscsi connection_info field "target_portal"`},
		{"iscsi CHAP without a password", func(i *volume.ConnectionInfo) {
			i.DriverVolumeType = volume.DriverISCSI
			i.Data = map[string]string{volume.DataTargetIQN: "iqn.2026-11.io.volattach:nothing", volume.DataTargetPortal: "127.0.0.1:3260", volume.DataTargetLUN: "1",
				volume.DataAuthMethod: "CHAP", volume.DataAuthUsername: "someone"}
		}, compute.ErrInvalidConnectionInfo.Error() + `: iscsi connection_info field "auth_password"`},
		{"nbd port that is not a number", func(i *volume.ConnectionInfo) {
			i.DriverVolumeType = volume.DriverNBD
			i.Data = map[string]string{volume.DataHost: "127.0.0.1", volume.DataPort: "nbd", volume.DataExportName: "x"}
		}, compute.ErrInvalidConnectionInfo.Error() + `: nbd connection_info field "port"`},
	}
	var backends []volume.Backend
	dir := volumeDir(t)
	for i, tc := range cases {
		inner, err := file.New(file.Config{Dir: filepath.Join(dir, "rewriting")})
		if err != nil {
			t.Fatal(err)
		}
		backends = append(backends, &rewriting{Backend: inner, name: "rewriting-" + string(rune('a'+i)), edit: tc.edit})
	}
	s := newStack(t, func(c *node.Config) { c.Backends = backends })
	inst := s.guest(true)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := s.volume(backends[i].Name())
			_, err := s.attach(inst, v, compute.BusSCSI)
			var ce *compute.Error
			if !errors.As(err, &ce) {
				t.Fatalf("attach: %v (%T), want a *compute.Error", err, err)
			}
			class := compute.ErrInvalidConnectionInfo
			if i == 0 {
				class = compute.ErrUnsupportedVolumeDriver
			}
			if !errors.Is(err, class) {
				t.Fatalf("attach: %v; want class %s", err, class.Name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("attach: %v; want it to name %q", err, tc.want)
			}
			t.Logf("attach: %v", err)
			if got := compute.HTTPStatus(err); got != 500 {
				t.Errorf("HTTP status %d, want 500 (a host-side failure)", got)
			}
			s.requireReleased(inst, v)
		})
	}
}

// TestAttachToMissingGuest: an instance whose guest is gone from libvirt
// fails the attach with InstanceNotFound; the attach rolls back: no disk,
// no CHAP secret, the volume available with no attachment or mapping, and
// the iSCSI target admits nobody (terminate_connection revoked the ACL;
// the export itself goes with the volume, as upstream's does). An instance
// the node never recorded, and a guest libvirt does not know, are
// InstanceNotFound before anything is written.
func TestAttachToMissingGuest(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := testCtx(t)
	inst := s.guest(false)
	if err := s.n.Libvirt().RemoveGuest(ctx, inst.UUID); err != nil {
		t.Fatal(err)
	}
	v := s.volume("iscsi")
	_, err := s.attach(inst, v, compute.BusSCSI)
	if !errors.Is(err, compute.ErrInstanceNotFound) {
		t.Fatalf("attach to a guest that is gone: %v, want InstanceNotFound", err)
	}
	s.requireNoVolumeState(inst, v)
	iqn, err := s.n.ISCSIBackend().TargetIQN(v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if acl := tgtACL(t, iqn); len(acl) != 0 {
		t.Errorf("target %s still admits %v after the failed attach", iqn, acl)
	}
	s.release(v.ID)
	if tid := tgtTID(t, iqn); tid != "" {
		t.Errorf("target %s (tid %s) still exported after the volume was deleted", iqn, tid)
	}

	// Never recorded: refused at the API's first gate.
	other := s.volume("file")
	if _, err := s.attach(&compute.Instance{UUID: volume.NewUUID()}, other, compute.BusSCSI); !errors.Is(err, compute.ErrInstanceNotFound) {
		t.Fatalf("attach to an instance never recorded: %v, want InstanceNotFound", err)
	}
	if st, atts := s.volumeState(other); st != volume.StatusAvailable || len(atts) != 0 {
		t.Fatalf("volume %s with attachments %v after a refused attach", st, atts)
	}

	// Unknown to libvirt: RegisterGuest records nothing.
	before, err := s.n.Store().List(ctx, volattach.KindInstance, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, guest := range []string{"volattach-no-such-guest", volume.NewUUID()} {
		if _, err := s.n.RegisterGuest(ctx, guest); !errors.Is(err, compute.ErrInstanceNotFound) {
			t.Errorf("RegisterGuest(%q): %v, want InstanceNotFound", guest, err)
		}
	}
	after, err := s.n.Store().List(ctx, volattach.KindInstance, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, after) {
		t.Errorf("instances %v after refused registrations, want %v", after, before)
	}
}

// tgtACL lists the initiators (names or addresses) target iqn admits, from
// the "ACL information" section of `tgtadm --op show --mode target`.
func tgtACL(t testing.TB, iqn string) []string {
	t.Helper()
	out, err := exec.Command("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target").Output()
	if err != nil {
		t.Fatalf("tgtadm show target: %v", err)
	}
	var acl []string
	in, inACL := false, false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "Target "); ok {
			_, name, _ := strings.Cut(rest, ": ")
			in, inACL = strings.TrimSpace(name) == iqn, false
			continue
		}
		if !in {
			continue
		}
		switch trimmed := strings.TrimSpace(line); {
		case trimmed == "ACL information:":
			inACL = true
		case inACL && strings.HasPrefix(line, "        "):
			acl = append(acl, trimmed)
		default:
			inACL = false
		}
	}
	return acl
}
