package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/volume"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Run(m)) }

// stuck makes, on the file backend in dir, a volume left attaching (a
// reserve nobody followed up) and one left detaching with an attachment
// for an instance the compute side never recorded.
func stuck(t *testing.T, dir string) (attaching, detaching string) {
	t.Helper()
	testenv.NeedCommand(t, "qemu-img")
	b, err := file.New(file.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := volume.NewService(volume.WithStore(etcdtest.Store(t)), volume.WithLocker(etcdtest.Locker(t)), volume.WithBackend(b))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ids []string
	for range 2 {
		v, err := svc.CreateVolume(ctx, volume.VolumeSpec{SizeBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Reserve(ctx, v.ID); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.ID)
	}
	if _, err := svc.Attach(ctx, ids[1], volume.NewUUID(), "compute-1", "/dev/vdb", ""); err != nil {
		t.Fatal(err)
	}
	if err := svc.BeginDetaching(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	return ids[0], ids[1]
}

func runRepair(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, args, func(string) string { return "" }, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDryRunListsThenFixRepairs(t *testing.T) {
	dir := t.TempDir()
	attaching, detaching := stuck(t, dir)
	base := []string{"-etcd", strings.Join(etcdtest.Endpoints(t), ","), "-prefix", etcdtest.Prefix(t), "-file-dir", dir, "-grace", "0"}

	before := etcdtest.Revision(t)
	code, out, errOut := runRepair(t, base...)
	if code != exitLeft {
		t.Fatalf("dry run exit %d, want %d\n%s%s", code, exitLeft, out, errOut)
	}
	if after := etcdtest.Revision(t); after != before {
		t.Fatalf("the dry run wrote: revision %d -> %d", before, after)
	}
	// One line per finding, in repair order (kind, then volume id).
	want := []*regexp.Regexp{
		regexp.MustCompile(`^attachment_no_mapping volume=` + detaching + ` instance=\S+ attachment=\S+: attachment in attached but the instance has no mapping of the volume -> delete_attachment$`),
		regexp.MustCompile(`^volume_stuck volume=` + attaching + `: volume is attaching with no operation working on it; its attachments derive available -> recompute_status$`),
		regexp.MustCompile(`^volume_stuck volume=` + detaching + `: volume is detaching with no operation working on it; its attachments derive in-use -> recompute_status$`),
	}
	if detaching < attaching {
		want[1], want[2] = want[2], want[1]
	}
	want = append(want, regexp.MustCompile(`^3 items found \(dry run: nothing changed; -fix repairs them\)$`))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("dry run printed:\n%s", out)
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Fatalf("line %d: %q does not match %s", i+1, lines[i], re)
		}
	}
	// The same again: the order is stable.
	if _, again, _ := runRepair(t, base...); again != out {
		t.Fatalf("a second dry run printed otherwise:\n%s\nthen\n%s", out, again)
	}

	code, out, errOut = runRepair(t, append(base, "-fix")...)
	// Deleting the attachment settles the detaching volume too.
	if code != exitClean || !strings.HasSuffix(strings.TrimSpace(out), "2 items fixed, nothing left") ||
		!strings.Contains(out, "fixed: volume_stuck volume="+attaching) || !strings.Contains(out, "resolved meanwhile: volume_stuck volume="+detaching) {
		t.Fatalf("-fix exit %d:\n%s%s", code, out, errOut)
	}
	code, out, _ = runRepair(t, base...)
	if code != exitClean || strings.TrimSpace(out) != "nothing stuck or drifting" {
		t.Fatalf("after -fix, dry run exit %d:\n%s", code, out)
	}
}

func TestBadCommandLines(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-etcd", "http://127.0.0.1:1", "extra"},
		{"-etcd", "http://127.0.0.1:1", "-iscsi-dir", "/tmp"},
		{"-etcd", "http://127.0.0.1:1", "-libvirt", "qemu:///system"},
	} {
		if code, out, errOut := runRepair(t, args...); code != exitUsage || !strings.HasPrefix(errOut, "repair: ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

func TestUnreachableEtcd(t *testing.T) {
	code, _, errOut := runRepair(t, "-etcd", "http://127.0.0.1:1", "-timeout", "2s")
	if code != exitUsage || !strings.Contains(errOut, "no endpoint reachable") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
