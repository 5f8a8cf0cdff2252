package node_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"libvirt.org/go/libvirtxml"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/iscsi"
	"github.com/volattach/volattach/adapters/storage/nbd"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Run(m)) }

// testTimeout bounds one whole-stack test's own calls.
const testTimeout = 5 * time.Minute

// waitFor bounds polling for an outside effect (a connection closing, a
// login). Generous: on a busy 2-core machine with several TCG guests a
// QEMU can take tens of seconds to start or log in; a poll that succeeds
// returns at once, so only a failing test waits this long.
const waitFor = 2 * time.Minute

// libvirtCallTimeout bounds each libvirtd call of a test node's adapter
// (the product default is libvirt.DefaultCallTimeout). Under load a call
// that waits on QEMU (a start, a hot-plug that opens a network disk) takes
// longer than the default without anything being wrong.
const libvirtCallTimeout = 2 * time.Minute

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// stack is one node for one test, on the shared etcdtest server under a
// prefix of the test's own, with every built-in backend enabled.
type stack struct {
	t      testing.TB
	n      *node.Node
	logged func() string
}

// newStack starts a node for t. It holds the shared libvirtd lock (a
// parallel test must call t.Parallel first) and skips t, or fails it when
// VOLATTACH_REQUIRE_ENV=1, when libvirtd, tgtd, qemu-img or qemu-nbd are
// missing. edit changes the configuration before the node starts.
func newStack(t testing.TB, edit ...func(*node.Config)) *stack {
	t.Helper()
	libvirttest.Shared(t)
	testenv.NeedCommand(t, "qemu-img", "qemu-nbd", "tgtadm")
	out, err := exec.Command("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target").CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%v: %s", err, out)
	}
	testenv.Need(t, "tgtd", err)
	log, logged := recordedLog(t)
	dir := volumeDir(t)
	cfg := node.Config{
		Host: "node-test-" + randomHex(4),
		Etcd: node.EtcdConfig{
			Client: &etcd.ClientConfig{Endpoints: etcdtest.Endpoints(t), DialTimeout: etcdtest.StartTimeout},
			Prefix: etcdtest.Prefix(t),
		},
		File:  &file.Config{Dir: filepath.Join(dir, "file")},
		ISCSI: &iscsi.Config{Dir: filepath.Join(dir, "iscsi"), StateDir: t.TempDir()},
		NBD:   &nbd.Config{Dir: filepath.Join(dir, "nbd"), StateDir: t.TempDir(), StopOnClose: true},
		Libvirt: node.LibvirtConfig{Options: []libvirt.Option{
			libvirt.WithInitiatorFile(""), libvirt.WithStateDir(t.TempDir()),
			libvirt.WithCallTimeout(libvirtCallTimeout),
		}},
		Log: log,
	}
	for _, e := range edit {
		e(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	n, err := node.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), libvirttest.CleanupTimeout)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("node.Close: %v", err)
		}
	})
	_, err = n.Libvirt().Ping(ctx)
	testenv.Need(t, "libvirtd at "+libvirt.DefaultURI, err)
	return &stack{t: t, n: n, logged: logged}
}

// volumeDir makes a directory QEMU's user can reach (t.TempDir's are 0700;
// libvirt hands the volume file to QEMU's user, not the directories above
// it). Removed when t ends.
func volumeDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "volattach-node-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// guest defines an OS-less guest (started when start is true), removed
// when t ends, and registers it as an instance on the node's host.
func (s *stack) guest(start bool) *compute.Instance {
	s.t.Helper()
	uuid := libvirttest.Guest(s.t, s.n.Libvirt(), start)
	inst, err := s.n.RegisterGuest(testCtx(s.t), uuid)
	if err != nil {
		s.t.Fatalf("RegisterGuest %s: %v", uuid, err)
	}
	return inst
}

// volume creates a 16 MiB volume on backend. When t ends, a volume still
// attached is released (its guest removed first if it still holds the
// disk) and the volume deleted with its export.
func (s *stack) volume(backend string) *volume.Volume {
	s.t.Helper()
	v, err := s.n.Volumes().CreateVolume(testCtx(s.t), volume.VolumeSpec{Backend: backend, Size: 1, SizeBytes: 16 << 20})
	if err != nil {
		s.t.Fatalf("create volume on %s: %v", backend, err)
	}
	s.t.Cleanup(func() { s.release(v.ID) })
	return v
}

// release detaches volume id from every instance still mapping it and
// deletes it; a guest that keeps the disk is removed first.
func (s *stack) release(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), libvirttest.CleanupTimeout)
	defer cancel()
	ids, err := s.n.Store().List(ctx, volattach.KindMapping, compute.MappingPrefix(id), "", 0)
	if err != nil {
		s.t.Errorf("cleanup: list mappings of %s: %v", id, err)
	}
	for _, mid := range ids {
		inst := strings.TrimPrefix(mid, compute.MappingPrefix(id))
		req := compute.DetachRequest{InstanceUUID: inst, VolumeID: id}
		if err := s.n.Compute().DetachVolume(ctx, req); err != nil {
			if rerr := s.n.Libvirt().RemoveGuest(ctx, inst); rerr != nil {
				s.t.Errorf("cleanup: remove guest %s: %v", inst, rerr)
			}
			if err := s.n.Compute().DetachVolume(ctx, req); err != nil && !errors.Is(err, compute.ErrVolumeBDMNotFound) {
				s.t.Errorf("cleanup: detach %s from %s: %v", id, inst, err)
			}
		}
	}
	if err := s.n.Volumes().DeleteVolume(ctx, id); err != nil && !errors.Is(err, volume.ErrVolumeNotFound) {
		s.t.Errorf("cleanup: delete volume %s: %v", id, err)
	}
}

// attach attaches v to inst on bus through the compute API, waiting for
// the host.
func (s *stack) attach(inst *compute.Instance, v *volume.Volume, bus string) (*compute.VolumeAttachment, error) {
	return s.n.Compute().AttachVolume(testCtx(s.t), compute.AttachRequest{InstanceUUID: inst.UUID, VolumeID: v.ID, DiskBus: bus})
}

func (s *stack) detach(inst *compute.Instance, v *volume.Volume) error {
	return s.n.Compute().DetachVolume(testCtx(s.t), compute.DetachRequest{InstanceUUID: inst.UUID, VolumeID: v.ID})
}

// mapping reads the mapping of v on inst; nil when there is none.
func (s *stack) mapping(inst *compute.Instance, v *volume.Volume) *compute.BlockDeviceMapping {
	s.t.Helper()
	m := &compute.BlockDeviceMapping{InstanceUUID: inst.UUID, VolumeID: v.ID}
	err := s.n.Store().Get(testCtx(s.t), m)
	if errors.Is(err, volattach.ErrNotFound) {
		return nil
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

// volumeState returns v's status and its attachments' attach statuses.
func (s *stack) volumeState(v *volume.Volume) (volume.Status, []volume.AttachStatus) {
	s.t.Helper()
	ctx := testCtx(s.t)
	fresh, err := s.n.Volumes().GetVolume(ctx, v.ID)
	if err != nil {
		s.t.Fatal(err)
	}
	atts, err := s.n.Volumes().Attachments(ctx, v.ID)
	if err != nil {
		s.t.Fatal(err)
	}
	var st []volume.AttachStatus
	for _, a := range atts {
		st = append(st, a.AttachStatus)
	}
	return fresh.Status, st
}

// disks returns the guest's disks with serial id, live or persistent.
func (s *stack) disks(inst *compute.Instance, id string, live bool) []libvirtxml.DomainDisk {
	s.t.Helper()
	all, err := s.n.Libvirt().GuestDisks(testCtx(s.t), inst.UUID, live)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []libvirtxml.DomainDisk
	for _, d := range all {
		if d.Serial == id {
			out = append(out, d)
		}
	}
	return out
}

// requireDisk fails t unless the guest has exactly one disk with the
// volume's id as serial on dev and bus, in its live (or persistent)
// definition.
func (s *stack) requireDisk(inst *compute.Instance, v *volume.Volume, live bool, dev, bus string) libvirtxml.DomainDisk {
	s.t.Helper()
	where := map[bool]string{true: "live", false: "persistent"}[live]
	disks := s.disks(inst, v.ID, live)
	if len(disks) != 1 {
		s.t.Fatalf("%d disks with serial %s in the %s definition, want 1", len(disks), v.ID, where)
	}
	d := disks[0]
	if d.Target == nil || d.Target.Dev != dev || d.Target.Bus != bus {
		s.t.Fatalf("%s disk %s has target %+v, want %s on %s", where, v.ID, d.Target, dev, bus)
	}
	return d
}

// requireReleased fails t unless v is fully detached from inst: no disk
// (live or persistent), volume available with no attachment, no mapping,
// no entry in the instance's device index, no CHAP secret in libvirt.
func (s *stack) requireReleased(inst *compute.Instance, v *volume.Volume) {
	s.t.Helper()
	for _, live := range []bool{true, false} {
		if d := s.disks(inst, v.ID, live); len(d) != 0 {
			s.t.Errorf("disk %s still in the guest (live %v): %+v", v.ID, live, d[0].Target)
		}
	}
	s.requireNoVolumeState(inst, v)
}

// requireNoVolumeState checks the records and libvirt's secrets only (for
// a guest that does not exist).
func (s *stack) requireNoVolumeState(inst *compute.Instance, v *volume.Volume) {
	s.t.Helper()
	if st, atts := s.volumeState(v); st != volume.StatusAvailable || len(atts) != 0 {
		s.t.Errorf("volume %s is %s with attachments %v; want available with none", v.ID, st, atts)
	}
	if m := s.mapping(inst, v); m != nil {
		s.t.Errorf("mapping left behind: %+v", m)
	}
	fresh := &compute.Instance{UUID: inst.UUID}
	if err := s.n.Store().Get(testCtx(s.t), fresh); err != nil {
		s.t.Fatal(err)
	}
	if d, ok := fresh.BlockDevices[v.ID]; ok {
		s.t.Errorf("instance device index still lists %s at %q", v.ID, d)
	}
	if ok, err := s.n.Libvirt().ISCSISecretDefined(testCtx(s.t), v.ID); err != nil || ok {
		s.t.Errorf("CHAP secret of %s defined = %v (%v); want none", v.ID, ok, err)
	}
}

// tgtTID returns the tgtd target id exporting iqn, or "" when tgtd has no
// such target.
func tgtTID(t testing.TB, iqn string) string {
	t.Helper()
	out, err := exec.Command("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target").Output()
	if err != nil {
		t.Fatalf("tgtadm show target: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		// "Target 3: iqn.2026-11.io.volattach:<id>"
		rest, ok := strings.CutPrefix(sc.Text(), "Target ")
		if !ok {
			continue
		}
		if tid, name, ok := strings.Cut(rest, ": "); ok && strings.TrimSpace(name) == iqn {
			return tid
		}
	}
	return ""
}

// tgtInitiators lists the initiator names connected to target tid
// (`tgtadm --op show --mode conn`).
func tgtInitiators(t testing.TB, tid string) []string {
	t.Helper()
	out, err := exec.Command("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "conn", "--tid", tid).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "can't find the target") {
			return nil
		}
		t.Fatalf("tgtadm show conn --tid %s: %v: %s", tid, err, out)
	}
	var names []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Initiator:"); ok {
			names = append(names, strings.Fields(v)[0])
		}
	}
	return names
}

// tcpConns counts the established TCP connections whose local port is
// port (the server side of each), from /proc/net/tcp.
func tcpConns(t testing.TB, port string) int { return tcpSockets(t, port, "01") }

// listening reports whether a TCP socket listens on port.
func listening(t testing.TB, port string) bool { return tcpSockets(t, port, "0A") > 0 }

// tcpSockets counts the IPv4 TCP sockets on local port in state (as
// /proc/net/tcp writes it: 01 established, 0A listening).
func tcpSockets(t testing.TB, port, state string) int {
	t.Helper()
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("port %q: %v", port, err)
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf(":%04X", p)
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// f[1] is the local address, f[3] the state.
		if len(f) > 3 && strings.HasSuffix(f[1], local) && f[3] == state {
			n++
		}
	}
	return n
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %v: %s", waitFor, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recordedLog is a logger that keeps everything logged and shows it in the
// test's output when the test fails.
func recordedLog(t testing.TB) (*logrus.Logger, func() string) {
	w := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", w.String())
		}
	})
	l := logrus.New()
	l.SetOutput(w)
	l.SetLevel(logrus.DebugLevel)
	return l, w.String
}

type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *logBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *logBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// containsAll reports whether every one of want is in got.
func containsAll(got []string, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}
