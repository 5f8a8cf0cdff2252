package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/compute"
)

// demoTimeout bounds one run of the demo in a test.
const demoTimeout = 3 * time.Minute

// parentDir is a directory for the demo's temporary directory that QEMU's
// user can reach (t.TempDir's are 0700); removed when t ends.
func parentDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "volattach-demo-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// removeGuestAtEnd removes the guest named name when t ends, if a run left
// it behind.
func removeGuestAtEnd(t *testing.T, a *libvirt.Adapter, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), libvirttest.CleanupTimeout)
		defer cancel()
		if uuid, err := a.LookupGuest(ctx, name); err == nil {
			if err := a.RemoveGuest(ctx, uuid); err != nil {
				t.Errorf("remove guest %s: %v", name, err)
			}
		}
	})
}

var servedVolume = regexp.MustCompile(`serial ([0-9a-f-]{36})  <- the volume`)

// TestDemo runs the demo's main path end to end on the real libvirtd for
// each backend: it exits without error, prints the transitions of the
// attach and of the detach as they happen, the guest's disk with the
// volume id as serial, and then removes everything it made: the guest, the
// volume's export and libvirt secret, and its temporary directory.
func TestDemo(t *testing.T) {
	for _, backend := range []string{"iscsi", "nbd", "file"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			quiet := logrus.New()
			quiet.Out = io.Discard
			a := libvirttest.Adapter(t, libvirt.WithLogger(quiet))
			testenv.NeedCommand(t, "qemu-img", "qemu-nbd", "tgtadm")
			if backend == "iscsi" {
				out, err := exec.Command("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target").CombinedOutput()
				if err != nil {
					err = errors.New(string(out))
				}
				testenv.Need(t, "tgtd", err)
			}
			guest := libvirttest.GuestName(t)
			removeGuestAtEnd(t, a, guest)
			parent := parentDir(t)
			ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
			defer cancel()

			var out, stderr bytes.Buffer
			err := run(ctx, []string{"-guest", guest, "-backend", backend, "-dir", parent}, &out, &stderr)
			t.Logf("demo output:\n%s", out.String())
			if err != nil {
				t.Fatalf("demo: %v\nstderr:\n%s", err, stderr.String())
			}
			text := out.String()
			wantInOrder := []string{
				"defined and started " + guest,
				"compute.vm_state         inst ", "building -> active", "build",
				"volume.status            vol ", "(new) -> creating", "creating -> available",
				"available -> attaching", "requested -> converted", "connection_initialized -> guest_attached",
				"attaching -> attached", "attaching -> in-use", "connection_saved -> attached",
				"is /dev/sda in the guest", "<- the volume",
				"in-use -> detaching", "requested -> guest_detached", "attached -> detached",
				"detaching -> available", "connection_terminated -> detached",
				"no disk with serial", "available -> deleting", "deleting -> deleted", "deleted (storage and export removed)",
				guest + " destroyed and undefined", "removed " + parent,
			}
			rest := text
			for _, w := range wantInOrder {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("the output lacks %q (in this order)", w)
				}
				rest = rest[i+len(w):]
			}
			// One history line per record per action: no self-loop
			// followed by a recompute of the status.
			for _, bad := range []string{"detaching -> detaching", "attaching -> attaching", "deleting -> deleting", "recompute_"} {
				if strings.Contains(text, bad) {
					t.Errorf("the history shows %q: an action wrote more than one transition of a record", bad)
				}
			}
			m := servedVolume.FindStringSubmatch(text)
			if m == nil {
				t.Fatal("the disk list names no volume disk")
			}
			id := m[1]

			// Everything the demo made is gone.
			if _, err := a.LookupGuest(ctx, guest); !errors.Is(err, compute.ErrInstanceNotFound) {
				t.Errorf("guest %s after the demo: %v, want it removed", guest, err)
			}
			if ok, err := a.ISCSISecretDefined(ctx, id); err != nil || ok {
				t.Errorf("CHAP secret of %s defined = %v (%v) after the demo", id, ok, err)
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Errorf("the demo left %v in %s", left, parent)
			}
			if out, _ := exec.Command("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target").Output(); strings.Contains(string(out), id) {
				t.Errorf("tgtd still exports volume %s", id)
			}
			if pids := processesNaming(t, id); len(pids) != 0 {
				t.Errorf("processes %v still serve volume %s", pids, id)
			}
		})
	}
}

// processesNaming lists the processes whose command line names s (a
// qemu-nbd serving a volume names its id).
func processesNaming(t *testing.T, s string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}

// TestDemoWithoutLibvirtd: when libvirtd cannot be reached the demo fails
// with a message naming libvirtd and the script that starts it, and leaves
// nothing behind.
func TestDemoWithoutLibvirtd(t *testing.T) {
	t.Parallel()
	testenv.NeedCommand(t, "qemu-img")
	parent := parentDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	var out, stderr bytes.Buffer
	err := run(ctx, []string{"-backend", "file", "-dir", parent,
		"-uri", "qemu+unix:///system?socket=" + filepath.Join(parent, "no-such-socket")}, &out, &stderr)
	var fix *fixable
	if !errors.As(err, &fix) {
		t.Fatalf("demo: %v, want a failure with its fix", err)
	}
	if !strings.Contains(err.Error(), "libvirtd is not running") || !strings.Contains(err.Error(), "scripts/env-up.sh") {
		t.Fatalf("message %q does not name libvirtd and scripts/env-up.sh", err)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("the failed demo left %v in %s", left, parent)
	}
}

// TestDemoUsage: a bad command line is a usage error, before anything
// starts.
func TestDemoUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-backend", "ceph"}, {"-backend", "nbd", "-encrypted"}, {"-backend", "rbd", "-encrypted"}, {"-bus", "ide"}, {"-size", "0"}, {"-guest", ""},
		{"-detach-attempts", "0"}, {"extra"}, {"-no-such-flag"},
	} {
		var out, stderr bytes.Buffer
		if err := run(context.Background(), args, &out, &stderr); !errors.Is(err, errUsage) {
			t.Errorf("run %q: %v, want a usage error", args, err)
		}
		if out.Len() != 0 {
			t.Errorf("run %q printed %q before refusing", args, out.String())
		}
	}
}
