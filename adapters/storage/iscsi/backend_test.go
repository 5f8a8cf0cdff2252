package iscsi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/internal/qemuio"
	"github.com/volattach/volattach/adapters/storage/iscsi"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/volume"
)

const mib = 1 << 20

// fixture is one test's backend, with a unique IQN prefix so tests (and
// other packages' tests) can share tgtd in parallel.
type fixture struct {
	b      *iscsi.Backend
	cfg    iscsi.Config
	prefix string
	hook   *logtest.Hook
}

func randHex(n int) string {
	buf := make([]byte, n)
	rand.Read(buf)
	return hex.EncodeToString(buf)
}

// newID returns a volume id shaped like a UUID.
func newID() string {
	h := randHex(16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	testenv.NeedCommand(t, "tgtadm", "qemu-img", "qemu-io")
	out, err := exec.Command("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target").CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%v: %s", err, out)
	}
	testenv.Need(t, "tgtd", err)

	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	prefix := "iqn.2026-11.io.volattach.test-" + randHex(6) + ":"
	cfg := iscsi.Config{Dir: t.TempDir(), StateDir: t.TempDir(), IQNPrefix: prefix, Log: log}
	b, err := iscsi.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f := &fixture{b: b, cfg: cfg, prefix: prefix, hook: hook}
	t.Cleanup(func() { f.sweep(t) })
	return f
}

// sweep removes whatever a failed test left in tgtd under its prefix: every
// target, and the account of every target or stored secret.
func (f *fixture) sweep(t *testing.T) {
	ids := map[string]bool{}
	for _, tg := range targets(t) {
		if id, ok := strings.CutPrefix(tg, f.prefix); ok {
			ids[id] = true
		}
	}
	secrets, _ := filepath.Glob(filepath.Join(f.cfg.StateDir, "*.chap"))
	for _, s := range secrets {
		ids[strings.TrimSuffix(filepath.Base(s), ".chap")] = true
	}
	for id := range ids {
		if err := f.b.RemoveExport(context.Background(), volume.Volume{ID: id}); err != nil {
			t.Errorf("cleanup: RemoveExport %s: %v", id, err)
		}
	}
}

// targets lists the IQNs of tgtd's targets.
func targets(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target").Output()
	if err != nil {
		t.Fatalf("tgtadm show target: %v", err)
	}
	var iqns []string
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "Target "); ok {
			_, iqn, _ := strings.Cut(rest, ": ")
			iqns = append(iqns, iqn)
		}
	}
	return iqns
}

// showTarget returns tgtadm's description of the target named iqn, or "".
func showTarget(t *testing.T, iqn string) string {
	t.Helper()
	out, err := exec.Command("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target").Output()
	if err != nil {
		t.Fatalf("tgtadm show target: %v", err)
	}
	blocks := strings.Split("\n"+string(out), "\nTarget ")
	for _, blk := range blocks {
		if first, _, _ := strings.Cut(blk, "\n"); strings.HasSuffix(first, ": "+iqn) {
			return blk
		}
	}
	return ""
}

// accounts lists tgtd's CHAP accounts.
func accounts(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "account").Output()
	if err != nil {
		t.Fatalf("tgtadm show account: %v", err)
	}
	var users []string
	for _, line := range strings.Split(string(out), "\n")[1:] {
		if u := strings.TrimSpace(line); u != "" {
			users = append(users, u)
		}
	}
	return users
}

// imageOpts is how QEMU's initiator reaches the export in info, as the
// given initiator ("" for QEMU's default name), with the given secret.
func imageOpts(info volume.ConnectionInfo, initiator, secret string) qemuio.Image {
	d := info.Data
	opts := fmt.Sprintf("driver=iscsi,transport=tcp,portal=%s,target=%s,lun=%s,user=%s,password=%s",
		d[volume.DataTargetPortal], d[volume.DataTargetIQN], d[volume.DataTargetLUN], d[volume.DataAuthUsername], secret)
	if initiator != "" {
		opts += ",initiator-name=" + initiator
	}
	return qemuio.Image{"--image-opts", opts}
}

// url is the iscsi:// URL form of info with the given secret.
func url(info volume.ConnectionInfo, secret string) qemuio.Image {
	d := info.Data
	return qemuio.Image{"-f", "raw", fmt.Sprintf("iscsi://%s%%%s@%s/%s/%s",
		d[volume.DataAuthUsername], secret, d[volume.DataTargetPortal], d[volume.DataTargetIQN], d[volume.DataTargetLUN])}
}

// Reasons tgtd gives QEMU's initiator for a refused login: a wrong CHAP
// secret, and an initiator no ACL entry admits (tgtd hides the target).
const (
	badSecret  = "Authentication failure"
	notAllowed = "Target not found"
)

// refused checks that QEMU's initiator cannot log in with img, for reason.
func refused(t *testing.T, what string, img qemuio.Image, reason string) {
	t.Helper()
	out, err := qemuio.Run(context.Background(), img, "read 0 512")
	if err == nil {
		t.Fatalf("%s: qemu-io read succeeded, want a refused login:\n%s", what, out)
	}
	if !strings.Contains(out, "Failed to log in to target") || !strings.Contains(out, reason) {
		t.Fatalf("%s: qemu-io failed, but not with a login refused for %q: %v", what, reason, err)
	}
}

func twice(t *testing.T, what string, op func() error) {
	t.Helper()
	for i := 1; i <= 2; i++ {
		if err := op(); err != nil {
			t.Fatalf("%s (call %d): %v", what, i, err)
		}
	}
}

// assertNoSecretLogged checks every log entry for the secret.
func (f *fixture) assertNoSecretLogged(t *testing.T, secret string) {
	t.Helper()
	if len(f.hook.AllEntries()) == 0 {
		t.Fatal("no log entries at all: the check below would prove nothing")
	}
	for _, e := range f.hook.AllEntries() {
		text := e.Message + fmt.Sprint(e.Data)
		if strings.Contains(text, secret) {
			t.Fatalf("log entry %q %v contains the CHAP secret", e.Message, e.Data)
		}
	}
}

func TestExportLifecycleThroughQemuIO(t *testing.T) {
	tests := []struct {
		name string
		c    volume.Connector
	}{
		{"bound by initiator name", volume.Connector{Host: "compute-1", IP: "127.0.0.1", Initiator: "iqn.2026-11.io.volattach.test:" + randHex(4)}},
		{"bound by address", volume.Connector{Host: "compute-1", IP: "127.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t)
			b, c := f.b, tt.c
			v := volume.Volume{ID: newID(), SizeBytes: 4 * mib}
			iqn, _ := b.TargetIQN(v.ID)
			user, _ := b.AccountUser(v.ID)
			path, _ := b.Path(v.ID)

			twice(t, "CreateVolume", func() error { return b.CreateVolume(ctx, v) })
			twice(t, "CreateExport", func() error { return b.CreateExport(ctx, v, c) })
			shown := showTarget(t, iqn)
			if !strings.Contains(shown, "Backing store path: "+path) || !strings.Contains(shown, "        "+user+"\n") {
				t.Fatalf("target after CreateExport lacks LUN %s or account %s:\n%s", path, user, shown)
			}
			if !strings.HasSuffix(strings.TrimRight(shown, "\n"), "ACL information:") {
				t.Fatalf("a fresh export has ACL entries; nobody may log in before InitializeConnection:\n%s", shown)
			}

			var infos []volume.ConnectionInfo
			twice(t, "InitializeConnection", func() error {
				info, err := b.InitializeConnection(ctx, v, c)
				infos = append(infos, info)
				return err
			})
			info := infos[0]
			secret := info.Data[volume.DataAuthPassword]
			if infos[1].Data[volume.DataAuthPassword] != secret || infos[1].String() != info.String() {
				t.Fatalf("second InitializeConnection returned other data: %s vs %s", infos[1], info)
			}
			want := map[string]string{
				volume.DataTargetIQN: iqn, volume.DataTargetPortal: iscsi.DefaultPortal, volume.DataTargetLUN: "1",
				volume.DataAuthMethod: "CHAP", volume.DataAuthUsername: user, volume.DataVolumeID: v.ID,
			}
			for k, w := range want {
				if info.Data[k] != w {
					t.Errorf("connection_info[%s] = %q, want %q", k, info.Data[k], w)
				}
			}
			if info.DriverVolumeType != volume.DriverISCSI || len(secret) < 12 {
				t.Fatalf("connection_info = %s (secret of %d chars)", info, len(secret))
			}
			if strings.Contains(info.String(), secret) {
				t.Fatalf("ConnectionInfo.String() shows the secret")
			}

			img := imageOpts(info, c.Initiator, secret)
			if c.Initiator == "" {
				img = url(info, secret)
			}
			if err := qemuio.WriteRead(ctx, img, 0xab, 0, 64<<10); err != nil {
				t.Fatal(err)
			}
			refused(t, "wrong CHAP secret", imageOpts(info, c.Initiator, "WrongSecret0123456789"), badSecret)
			if c.Initiator != "" {
				refused(t, "initiator not bound", imageOpts(info, "iqn.2026-11.io.volattach.test:intruder", secret), notAllowed)
			}

			twice(t, "TerminateConnection", func() error { return b.TerminateConnection(ctx, v, c) })
			refused(t, "after TerminateConnection", img, notAllowed)

			twice(t, "RemoveExport", func() error { return b.RemoveExport(ctx, v) })
			if slices.Contains(targets(t), iqn) {
				t.Fatalf("target %s still exists after RemoveExport", iqn)
			}
			if slices.Contains(accounts(t), user) {
				t.Fatalf("account %s still exists after RemoveExport", user)
			}
			if entries, _ := os.ReadDir(f.cfg.StateDir); len(entries) != 0 {
				t.Fatalf("state directory not empty after RemoveExport: %v", entries)
			}

			twice(t, "DeleteVolume", func() error { return b.DeleteVolume(ctx, v) })
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("volume file after DeleteVolume: %v", err)
			}
			f.assertNoSecretLogged(t, secret)
		})
	}
}

// exported creates a volume, exports it and initialises a connection.
func (f *fixture) exported(t *testing.T, c volume.Connector) (volume.Volume, volume.ConnectionInfo) {
	t.Helper()
	ctx := context.Background()
	v := volume.Volume{ID: newID(), SizeBytes: mib}
	if err := f.b.CreateVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := f.b.CreateExport(ctx, v, c); err != nil {
		t.Fatal(err)
	}
	info, err := f.b.InitializeConnection(ctx, v, c)
	if err != nil {
		t.Fatal(err)
	}
	return v, info
}

var byName = volume.Connector{Host: "compute-1", IP: "127.0.0.1", Initiator: "iqn.2026-11.io.volattach.test:compute-1"}

func TestRemoveExportDisconnectsALoggedInInitiator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	v, info := f.exported(t, byName)
	iqn := info.Data[volume.DataTargetIQN]

	// qemu-io without -c reads commands from stdin: its session stays
	// logged in until stdin closes.
	img := imageOpts(info, byName.Initiator, info.Data[volume.DataAuthPassword])
	cmd := exec.Command("qemu-io", img...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	pollUntil(t, "the initiator's session shows in tgtd", func() bool {
		return strings.Contains(showTarget(t, iqn), "Initiator: "+byName.Initiator)
	})

	if err := f.b.RemoveExport(ctx, v); err != nil {
		t.Fatalf("RemoveExport with a session logged in: %v", err)
	}
	if slices.Contains(targets(t), iqn) {
		t.Fatalf("target %s survived RemoveExport with a session logged in", iqn)
	}
	if err := f.b.DeleteVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
}

func TestRestartedBackendKeepsCredentials(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	v, info := f.exported(t, byName)
	secret := info.Data[volume.DataAuthPassword]

	// A new process: same configuration, nothing in memory.
	b2, err := iscsi.New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	info2, err := b2.InitializeConnection(ctx, v, byName)
	if err != nil {
		t.Fatal(err)
	}
	if info2.Data[volume.DataAuthPassword] != secret {
		t.Fatal("a restarted backend returned another CHAP secret")
	}

	// tgtd restarted: it lost the target and the account. Creating the
	// export again restores them with the stored secret.
	iqn := info.Data[volume.DataTargetIQN]
	tgtadm(t, "--op", "delete", "--force", "--mode", "target", "--tid", tidOf(t, iqn))
	tgtadm(t, "--op", "delete", "--mode", "account", "--user", info.Data[volume.DataAuthUsername])
	if _, err := b2.InitializeConnection(ctx, v, byName); !errors.Is(err, storage.ErrExportNotFound) {
		t.Fatalf("InitializeConnection after tgtd lost the target = %v, want ErrExportNotFound", err)
	}
	if err := b2.CreateExport(ctx, v, byName); err != nil {
		t.Fatal(err)
	}
	info3, err := b2.InitializeConnection(ctx, v, byName)
	if err != nil {
		t.Fatal(err)
	}
	if info3.Data[volume.DataAuthPassword] != secret {
		t.Fatal("re-created export has another CHAP secret")
	}
	if err := qemuio.WriteRead(ctx, imageOpts(info3, byName.Initiator, secret), 0x3c, 0, 4096); err != nil {
		t.Fatal(err)
	}

	// The state directory lost the secret: the account, whose password
	// nobody knows now, is replaced, and only the new secret logs in.
	if err := os.Remove(filepath.Join(f.cfg.StateDir, v.ID+".chap")); err != nil {
		t.Fatal(err)
	}
	if err := b2.CreateExport(ctx, v, byName); err != nil {
		t.Fatal(err)
	}
	info4, err := b2.InitializeConnection(ctx, v, byName)
	if err != nil {
		t.Fatal(err)
	}
	fresh := info4.Data[volume.DataAuthPassword]
	if fresh == secret {
		t.Fatal("a lost secret was not replaced")
	}
	if st, err := os.Stat(filepath.Join(f.cfg.StateDir, v.ID+".chap")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, mode %v; want 0600", err, st.Mode())
	}
	refused(t, "the lost secret", imageOpts(info4, byName.Initiator, secret), badSecret)
	if _, err := qemuio.Run(ctx, imageOpts(info4, byName.Initiator, fresh), "read -P 0x3c 0 4096"); err != nil {
		t.Fatal(err)
	}
	if err := b2.DeleteVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	f.assertNoSecretLogged(t, secret)
	f.assertNoSecretLogged(t, fresh)
}

func TestConcurrentExportsGetTheirOwnTargets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	// Two backends on one tgtd and one state, as two processes would be.
	b2, err := iscsi.New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	backends := []*iscsi.Backend{f.b, b2}
	vols := make([]volume.Volume, 6)
	for i := range vols {
		vols[i] = volume.Volume{ID: newID(), SizeBytes: mib}
		if err := f.b.CreateVolume(ctx, vols[i]); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 2*len(vols))
	for i, v := range vols {
		for j := range 2 { // each volume exported by both backends at once
			go func() { errs <- backends[(i+j)%2].CreateExport(ctx, v, byName) }()
		}
	}
	for range 2 * len(vols) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	seen := map[string]int{}
	for _, iqn := range targets(t) {
		seen[iqn]++
	}
	for _, v := range vols {
		iqn, _ := f.b.TargetIQN(v.ID)
		if seen[iqn] != 1 {
			t.Errorf("volume %s has %d targets, want 1", v.ID, seen[iqn])
		}
		info, err := b2.InitializeConnection(ctx, v, byName)
		if err != nil {
			t.Fatal(err)
		}
		if err := qemuio.WriteRead(ctx, imageOpts(info, byName.Initiator, info.Data[volume.DataAuthPassword]), 0x11, 0, 4096); err != nil {
			t.Fatal(err)
		}
		if err := f.b.DeleteVolume(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBadInputIsRefusedAndLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	b := f.b
	for _, id := range []string{"", "../escape", "a/b", "..", "Upper-Case", "under_score"} {
		v := volume.Volume{ID: id, SizeBytes: mib}
		_, initErr := b.InitializeConnection(ctx, v, byName)
		errs := map[string]error{
			"CreateVolume":         b.CreateVolume(ctx, v),
			"CreateExport":         b.CreateExport(ctx, v, byName),
			"InitializeConnection": initErr,
			"TerminateConnection":  b.TerminateConnection(ctx, v, byName),
			"RemoveExport":         b.RemoveExport(ctx, v),
			"DeleteVolume":         b.DeleteVolume(ctx, v),
		}
		for op, err := range errs {
			if !errors.Is(err, storage.ErrInvalidVolumeID) {
				t.Errorf("%s(id %q) = %v, want ErrInvalidVolumeID", op, id, err)
			}
		}
	}
	formats := map[string]error{"qcow2": storage.ErrUnsupportedFormat, "vmdk": storage.ErrUnknownFormat}
	for format, want := range formats {
		v := volume.Volume{ID: newID(), SizeBytes: mib, Format: format}
		if err := b.CreateVolume(ctx, v); !errors.Is(err, want) {
			t.Errorf("CreateVolume(format %s) = %v, want %v", format, err, want)
		}
		if err := b.CreateExport(ctx, v, byName); !errors.Is(err, want) {
			t.Errorf("CreateExport(format %s) = %v, want %v", format, err, want)
		}
	}

	v := volume.Volume{ID: newID(), SizeBytes: mib}
	if err := b.CreateExport(ctx, v, byName); !errors.Is(err, storage.ErrExportFailure) || !errors.Is(err, storage.ErrVolumeNotFound) {
		t.Errorf("CreateExport without a volume = %v, want ErrExportFailure and ErrVolumeNotFound", err)
	}
	if err := b.CreateVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	if _, err := b.InitializeConnection(ctx, v, byName); !errors.Is(err, storage.ErrExportNotFound) {
		t.Errorf("InitializeConnection before CreateExport = %v, want ErrExportNotFound", err)
	}
	for _, c := range []volume.Connector{{}, {Host: "compute-1"}, {IP: "not-an-ip"}, {Initiator: "compute-1"}} {
		if err := b.CreateExport(ctx, v, c); !errors.Is(err, storage.ErrInvalidConnector) {
			t.Errorf("CreateExport(%+v) = %v, want ErrInvalidConnector", c, err)
		}
		if _, err := b.InitializeConnection(ctx, v, c); !errors.Is(err, storage.ErrInvalidConnector) {
			t.Errorf("InitializeConnection(%+v) = %v, want ErrInvalidConnector", c, err)
		}
		if err := b.TerminateConnection(ctx, v, c); !errors.Is(err, storage.ErrInvalidConnector) {
			t.Errorf("TerminateConnection(%+v) = %v, want ErrInvalidConnector", c, err)
		}
	}
	// Nothing of any refused call is left: no target, no account, no
	// secret, no file but the one good volume's.
	for _, iqn := range targets(t) {
		if strings.HasPrefix(iqn, f.prefix) {
			t.Errorf("target %s left behind", iqn)
		}
	}
	user, _ := b.AccountUser(v.ID)
	if slices.Contains(accounts(t), user) {
		t.Errorf("account %s left behind", user)
	}
	if entries, _ := os.ReadDir(f.cfg.StateDir); len(entries) != 0 {
		t.Errorf("state directory holds %v", entries)
	}
	if err := b.DeleteVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(f.cfg.Dir); len(entries) != 0 {
		t.Errorf("volume directory holds %v", entries)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	for _, cfg := range []iscsi.Config{
		{Dir: dir},
		{StateDir: dir},
		{Dir: dir, StateDir: dir, IQNPrefix: "IQN.2026-11.Upper:"},
		{Dir: dir, StateDir: dir, IQNPrefix: "volattach:"},
		{Dir: dir, StateDir: dir, Portal: "127.0.0.1"},
	} {
		if _, err := iscsi.New(cfg); !errors.Is(err, storage.ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

func tgtadm(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("tgtadm", append([]string{"--lld", "iscsi"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("tgtadm %v: %v: %s", args, err, out)
	}
}

func tidOf(t *testing.T, iqn string) string {
	t.Helper()
	shown := showTarget(t, iqn)
	tid, _, ok := strings.Cut(shown, ":")
	if !ok || shown == "" {
		t.Fatalf("no target %s", iqn)
	}
	return strings.TrimPrefix(tid, "Target ")
}
