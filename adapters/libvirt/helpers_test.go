package libvirt_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// testTimeout bounds one real-libvirt test's own calls.
const testTimeout = 3 * time.Minute

// waitFor bounds polling for an outside effect (a connection closing).
const waitFor = 30 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newVolumeID returns a volume id as the volume side makes them (a UUID).
func newVolumeID() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// volumeDir makes a directory QEMU's user can reach (t.TempDir's are 0700
// and owned by root; libvirt gives the file itself to QEMU's user, but not
// the directories above it). Removed when t ends.
func volumeDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "volattach-libvirt-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// imageFile creates a 16 MiB image of format (qcow2 or raw) with qemu-img.
func imageFile(t testing.TB, format string) string {
	t.Helper()
	testenv.NeedCommand(t, "qemu-img")
	path := filepath.Join(volumeDir(t), "volume."+format)
	run(t, "qemu-img", "create", "-q", "-f", format, path, "16M")
	return path
}

// fileVolume returns the connection_info of a new qcow2 volume file.
func fileVolume(t testing.TB) volume.ConnectionInfo {
	return volume.ConnectionInfo{DriverVolumeType: volume.DriverFile, Data: map[string]string{
		volume.DataPath: imageFile(t, "qcow2"), volume.DataFormat: "qcow2",
	}}
}

// tgtTarget is an iSCSI target made with tgtadm for one test.
type tgtTarget struct {
	tid      int
	iqn      string
	user     string
	password string
}

// newTGTTarget creates a target with one LUN (a raw image) on tgtd, a CHAP
// account bound to it when chap is true, and access for initiator only.
// Everything is removed when t ends.
func newTGTTarget(t testing.TB, initiator string, chap bool) *tgtTarget {
	t.Helper()
	testenv.NeedCommand(t, "tgtadm")
	_, err := exec.Command("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target").CombinedOutput()
	testenv.Need(t, "tgtd", err)
	image := imageFile(t, "raw")
	tg := &tgtTarget{iqn: "iqn.2026-01.io.volattach:libvirt-test-" + randomHex(6)}
	// Take a free target id: tgtadm refuses one in use.
	for attempt := 0; ; attempt++ {
		var r [2]byte
		_, _ = rand.Read(r[:])
		tg.tid = 20000 + (int(r[0])<<8|int(r[1]))%40000
		out, err := exec.Command("tgtadm", "--lld", "iscsi", "--op", "new", "--mode", "target",
			"--tid", strconv.Itoa(tg.tid), "-T", tg.iqn).CombinedOutput()
		if err == nil {
			break
		}
		if attempt > 20 {
			t.Fatalf("tgtadm new target: %v: %s", err, out)
		}
	}
	tid := strconv.Itoa(tg.tid)
	t.Cleanup(func() {
		if out, err := exec.Command("tgtadm", "--lld", "iscsi", "--op", "delete", "--force", "--mode", "target", "--tid", tid).CombinedOutput(); err != nil {
			t.Errorf("tgtadm delete target %s: %v: %s", tid, err, out)
		}
	})
	run(t, "tgtadm", "--lld", "iscsi", "--op", "new", "--mode", "logicalunit", "--tid", tid, "--lun", "1", "-b", image)
	if chap {
		tg.user, tg.password = "vt"+randomHex(5), randomHex(8)
		run(t, "tgtadm", "--lld", "iscsi", "--op", "new", "--mode", "account", "--user", tg.user, "--password", tg.password)
		user := tg.user
		t.Cleanup(func() {
			if out, err := exec.Command("tgtadm", "--lld", "iscsi", "--op", "delete", "--mode", "account", "--user", user).CombinedOutput(); err != nil {
				t.Errorf("tgtadm delete account %s: %v: %s", user, err, out)
			}
		})
		run(t, "tgtadm", "--lld", "iscsi", "--op", "bind", "--mode", "account", "--tid", tid, "--user", tg.user)
	}
	run(t, "tgtadm", "--lld", "iscsi", "--op", "bind", "--mode", "target", "--tid", tid, "--initiator-name", initiator)
	return tg
}

// info returns the target's connection_info, as the iSCSI backend gives it.
func (tg *tgtTarget) info() volume.ConnectionInfo {
	d := map[string]string{
		volume.DataTargetIQN: tg.iqn, volume.DataTargetPortal: "127.0.0.1:3260", volume.DataTargetLUN: "1",
	}
	if tg.user != "" {
		d[volume.DataAuthMethod] = "CHAP"
		d[volume.DataAuthUsername] = tg.user
		d[volume.DataAuthPassword] = tg.password
	}
	return volume.ConnectionInfo{DriverVolumeType: volume.DriverISCSI, Data: d}
}

// initiators lists the initiator names of the target's connections, from
// `tgtadm --op show --mode conn`.
func (tg *tgtTarget) initiators(t testing.TB) []string {
	t.Helper()
	out := run(t, "tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "conn", "--tid", strconv.Itoa(tg.tid))
	var names []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Initiator:"); ok {
			names = append(names, strings.TrimSpace(v))
		}
	}
	return names
}

// nbdExport is a qemu-nbd process serving one raw image.
type nbdExport struct {
	port int
	name string
}

// newNBDExport starts qemu-nbd on a free loopback port; it is killed when t
// ends.
func newNBDExport(t testing.TB) *nbdExport {
	t.Helper()
	testenv.NeedCommand(t, "qemu-nbd")
	image := imageFile(t, "raw")
	e := &nbdExport{name: "volattach-" + randomHex(4)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("qemu-nbd", "-f", "raw", "-p", strconv.Itoa(e.port), "-b", "127.0.0.1", "-x", e.name, "--persistent", image)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(waitFor)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(e.port)), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("qemu-nbd exited: %v: %s", err, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("qemu-nbd did not listen on %d: %s", e.port, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e
}

func (e *nbdExport) info() volume.ConnectionInfo {
	return volume.ConnectionInfo{DriverVolumeType: volume.DriverNBD, Data: map[string]string{
		volume.DataHost: "127.0.0.1", volume.DataPort: strconv.Itoa(e.port), volume.DataExportName: e.name,
	}}
}

// clients counts the established TCP connections to the export's port,
// from /proc/net/tcp (the server's side of each).
func (e *nbdExport) clients(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf(":%04X", e.port)
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// f[1] local address, f[3] state (01 = ESTABLISHED).
		if len(f) > 3 && strings.HasSuffix(f[1], local) && f[3] == "01" {
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

// volumeDisks returns the guest's disks with serial id, live or persistent.
func volumeDisks(t testing.TB, a *libvirt.Adapter, guest, id string, live bool) []libvirtxml.DomainDisk {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	disks, err := a.GuestDisks(ctx, guest, live)
	if err != nil {
		t.Fatal(err)
	}
	var out []libvirtxml.DomainDisk
	for _, d := range disks {
		if d.Serial == id {
			out = append(out, d)
		}
	}
	return out
}

// requireDisk fails t unless the guest has exactly one disk with serial id
// (live or persistent) on the given device and bus, with the volume's alias.
func requireDisk(t testing.TB, a *libvirt.Adapter, guest, id string, live bool, dev, bus string) libvirtxml.DomainDisk {
	t.Helper()
	disks := volumeDisks(t, a, guest, id, live)
	where := map[bool]string{true: "live", false: "persistent"}[live]
	if len(disks) != 1 {
		t.Fatalf("%d disks with serial %s in the %s definition, want 1", len(disks), id, where)
	}
	d := disks[0]
	if d.Target == nil || d.Target.Dev != dev || d.Target.Bus != bus {
		t.Fatalf("%s disk %s target %+v, want %s on %s", where, id, d.Target, dev, bus)
	}
	if d.Alias == nil || d.Alias.Name != "ua-"+id {
		t.Fatalf("%s disk %s alias %+v, want ua-%s", where, id, d.Alias, id)
	}
	return d
}

// requireNoDisk fails t if the guest has a disk with serial id.
func requireNoDisk(t testing.TB, a *libvirt.Adapter, guest, id string, live bool) {
	t.Helper()
	if disks := volumeDisks(t, a, guest, id, live); len(disks) != 0 {
		where := map[bool]string{true: "live", false: "persistent"}[live]
		t.Fatalf("disk %s still in the %s definition: %+v", id, where, disks[0])
	}
}

// requireNoSecret fails t if libvirt holds volume id's CHAP secret.
func requireNoSecret(t testing.TB, a *libvirt.Adapter, id string) {
	t.Helper()
	ok, err := a.ISCSISecretDefined(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Fatalf("the CHAP secret of volume %s is still defined", id)
	}
}

func scsi(id, dev string) compute.DiskInfo {
	return compute.DiskInfo{Serial: id, DeviceName: dev, Bus: compute.BusSCSI, DeviceType: "disk"}
}
