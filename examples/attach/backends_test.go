package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/storage/nfs/nfstest"
	"github.com/volattach/volattach/adapters/storage/rbd/rbdtest"
	"github.com/volattach/volattach/compute"
)

var cephSecretLine = regexp.MustCompile(`libvirt ceph secret ([0-9a-f-]{36}) defined`)

// TestDemoNetworkBackendsAndEncryption runs the demo on RBD, on NFS with
// -encrypted and on iSCSI with -encrypted: each attaches and detaches,
// says what it used (the ceph secret, the NFS share, the LUKS secret
// defined while attached and gone after), and leaves nothing: no guest, no
// ceph or volume secret, no directory in the NFS export.
func TestDemoNetworkBackendsAndEncryption(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"rbd", []string{"-backend", "rbd"}, []string{"libvirt ceph secret", "source rbd://127.0.0.1:3300/volumes/volume-", "auth   cephx, user volattach", "ceph secret", "removed"}},
		{"nfs-encrypted", []string{"-backend", "nfs", "-encrypted"}, []string{"QEMU opens them with its own NFS client", "source nfs://127.0.0.1/", "luks-encrypted", "defined: true", "defined: false"}},
		{"iscsi-encrypted", []string{"-backend", "iscsi", "-encrypted"}, []string{"LUKS keys in", "luks-encrypted", "defined: true", "defined: false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			quiet := logrus.New()
			quiet.Out = io.Discard
			a := libvirttest.Adapter(t, libvirt.WithLogger(quiet))
			switch tc.args[1] {
			case "rbd":
				rbdtest.Config(t)
			case "nfs":
				nfstest.Config(t)
			}
			guest := libvirttest.GuestName(t)
			removeGuestAtEnd(t, a, guest)
			parent := parentDir(t)
			ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
			defer cancel()
			before, _ := os.ReadDir(nfstest.Export())

			var out, stderr bytes.Buffer
			err := run(ctx, append([]string{"-guest", guest, "-dir", parent}, tc.args...), &out, &stderr)
			t.Logf("demo output:\n%s", out.String())
			if err != nil {
				t.Fatalf("demo: %v\nstderr:\n%s", err, stderr.String())
			}
			text := out.String()
			rest := text
			for _, w := range append(tc.want, "<- the volume", "no disk with serial", "deleted (storage and export removed)", "removed "+parent) {
				i := strings.Index(rest, w)
				if i < 0 && !strings.Contains(text, w) {
					t.Fatalf("the output lacks %q", w)
				}
				if i >= 0 {
					rest = rest[i+len(w):]
				}
			}
			m := servedVolume.FindStringSubmatch(text)
			if m == nil {
				t.Fatal("the disk list names no volume disk")
			}
			if _, err := a.LookupGuest(ctx, guest); !errors.Is(err, compute.ErrInstanceNotFound) {
				t.Errorf("guest %s after the demo: %v, want it removed", guest, err)
			}
			if ok, err := a.VolumeSecretDefined(ctx, m[1]); err != nil || ok {
				t.Errorf("LUKS secret of %s defined = %v (%v) after the demo", m[1], ok, err)
			}
			if s := cephSecretLine.FindStringSubmatch(text); s != nil {
				if ok, err := a.CephSecretDefined(ctx, s[1]); err != nil || ok {
					t.Errorf("ceph secret %s defined = %v (%v) after the demo", s[1], ok, err)
				}
			}
			after, _ := os.ReadDir(nfstest.Export())
			for _, e := range after {
				if tc.args[1] != "nfs" {
					break // another subtest's demo may be using the export
				}
				if strings.HasPrefix(e.Name(), "volattach-demo-") && !contains(before, e.Name()) {
					t.Errorf("the demo left %s in the NFS export", filepath.Join(nfstest.Export(), e.Name()))
				}
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Errorf("the demo left %v in %s", left, parent)
			}
		})
	}
}

func contains(entries []os.DirEntry, name string) bool {
	for _, e := range entries {
		if e.Name() == name {
			return true
		}
	}
	return false
}
