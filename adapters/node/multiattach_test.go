package node_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// qemuLogDir is where libvirtd keeps each QEMU's stdout and stderr.
const qemuLogDir = "/var/log/libvirt/qemu"

// qemuIO runs a qemu-io command on the guest's disk of volume id inside its
// running QEMU (HMP qemu-io through libvirt, on the disk's device alias): it
// reads and writes through the very block backend and iSCSI session the
// guest's disk uses. QEMU prints qemu-io's report on its stdout, which
// libvirtd writes to the domain's log: the test waits for the report there.
// A pattern mismatch or an I/O error fails t.
func qemuIO(t *testing.T, inst *compute.Instance, id, cmd string) {
	t.Helper()
	name, err := exec.Command("virsh", "-c", libvirt.DefaultURI, "domname", inst.UUID).Output()
	if err != nil {
		t.Fatalf("virsh domname %s: %v", inst.UUID, err)
	}
	logPath := filepath.Join(qemuLogDir, strings.TrimSpace(string(name))+".log")
	before := fileSize(t, logPath)
	hmp := fmt.Sprintf("qemu-io -d ua-%s %q", id, cmd)
	if out, err := exec.Command("virsh", "-c", libvirt.DefaultURI, "qemu-monitor-command", inst.UUID, "--hmp", hmp).CombinedOutput(); err != nil {
		t.Fatalf("guest %s: %s: %v: %s", inst.UUID, hmp, err, out)
	}
	var report string
	eventually(t, fmt.Sprintf("qemu-io %q reported in %s", cmd, logPath), func() bool {
		b, err := os.ReadFile(logPath)
		if err != nil || int64(len(b)) < before {
			return false
		}
		report = string(b[before:])
		// "wrote|read N/N bytes at offset O" ends every report.
		return strings.Contains(report, "bytes at offset") || strings.Contains(report, " failed: ")
	})
	if strings.Contains(report, "failed") || strings.Contains(report, "error") {
		t.Fatalf("guest %s, disk of %s: qemu-io %q: %s", inst.UUID, id, cmd, strings.TrimSpace(report))
	}
}

// fileSize returns the size of path; 0 when it does not exist.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestMultiattachSameHostISCSI (review H2, fidelity C18 and C19): two
// running guests of one host share a multiattach iSCSI volume. Both disks
// are <shareable/> and see each other's writes. Detaching the first guest
// leaves the host's access the second one needs: tgtd still admits the
// host's initiator, libvirt still holds the CHAP secret the second disk
// names, the second guest still reads and writes, and its persistent
// definition still starts (QEMU logs in again with CHAP). Detaching the
// second guest then releases everything.
func TestMultiattachSameHostISCSI(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	a, b := s.guest(true), s.guest(true)
	ctx := testCtx(t)
	v, err := s.n.Volumes().CreateVolume(ctx, volume.VolumeSpec{Backend: "iscsi", Size: 1, SizeBytes: 16 << 20, Multiattach: true})
	if err != nil {
		t.Fatalf("create multiattach volume: %v", err)
	}
	t.Cleanup(func() { s.release(v.ID) })
	for _, inst := range []*compute.Instance{a, b} {
		att, err := s.n.Compute().AttachVolume(ctx, compute.AttachRequest{InstanceUUID: inst.UUID, VolumeID: v.ID, DiskBus: compute.BusSCSI, SupportsMultiattach: true})
		if err != nil {
			t.Fatalf("attach to %s: %v", inst.UUID, err)
		}
		for _, live := range []bool{true, false} {
			if d := s.requireDisk(inst, v, live, strings.TrimPrefix(att.Device, "/dev/"), compute.BusSCSI); d.Shareable == nil {
				t.Fatalf("disk of multiattach volume %s in guest %s (live %v) is not <shareable/>", v.ID, inst.UUID, live)
			}
		}
	}
	// The two guests share the disk: what a writes, b reads.
	qemuIO(t, a, v.ID, "write -P 0x5a 0 4k")
	qemuIO(t, b, v.ID, "read -P 0x5a 0 4k")

	iqn, err := s.n.ISCSIBackend().TargetIQN(v.ID)
	if err != nil {
		t.Fatal(err)
	}
	initiator := s.n.Libvirt().InitiatorName()
	if err := s.detach(a, v); err != nil {
		t.Fatalf("detach from %s: %v", a.UUID, err)
	}
	if d := s.disks(a, v.ID, true); len(d) != 0 {
		t.Fatalf("disk still in guest %s after its detach", a.UUID)
	}
	if st, atts := s.volumeState(v); st != volume.StatusInUse || !slices.Equal(atts, []volume.AttachStatus{volume.AttachAttached}) {
		t.Fatalf("after detaching %s the volume is %s with attachments %v; want in-use, one attached", a.UUID, st, atts)
	}
	if acl := tgtACL(t, iqn); !slices.Contains(acl, initiator) {
		t.Fatalf("after detaching %s, tgtd target %s admits %v; the host's initiator %s, which %s still uses, was revoked", a.UUID, iqn, acl, initiator, b.UUID)
	}
	if ok, err := s.n.Libvirt().ISCSISecretDefined(ctx, v.ID); err != nil || !ok {
		t.Fatalf("after detaching %s the CHAP secret %s's disk names is defined = %v (%v)", a.UUID, b.UUID, ok, err)
	}
	qemuIO(t, b, v.ID, "write -P 0xa5 4k 4k")
	qemuIO(t, b, v.ID, "read -P 0xa5 4k 4k")

	// b's persistent definition still starts: QEMU logs in to the target
	// again, with the secret from libvirt and the ACL of tgtd.
	if err := s.n.Libvirt().DestroyGuest(ctx, b.UUID); err != nil {
		t.Fatalf("destroy %s: %v", b.UUID, err)
	}
	if err := s.n.Libvirt().StartGuest(ctx, b.UUID); err != nil {
		t.Fatalf("guest %s no longer starts from its persistent definition after %s's detach: %v", b.UUID, a.UUID, err)
	}
	tid := tgtTID(t, iqn)
	eventually(t, "the restarted guest's QEMU logged in to the target", func() bool {
		return slices.Contains(tgtInitiators(t, tid), initiator)
	})
	qemuIO(t, b, v.ID, "read -P 0xa5 4k 4k")
	qemuIO(t, b, v.ID, "write -P 0x3c 8k 4k")

	if err := s.detach(b, v); err != nil {
		t.Fatalf("detach from %s: %v", b.UUID, err)
	}
	s.requireReleased(b, v)
	if acl := tgtACL(t, iqn); slices.Contains(acl, initiator) {
		t.Errorf("the last detach on the host left initiator %s admitted to %s", initiator, iqn)
	}
}
