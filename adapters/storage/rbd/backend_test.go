package rbd_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/internal/qemuio"
	"github.com/volattach/volattach/adapters/storage/rbd"
	"github.com/volattach/volattach/adapters/storage/rbd/rbdtest"
	"github.com/volattach/volattach/volume"
)

const mib = 1 << 20

var connector = volume.Connector{Host: "compute-1", IP: "127.0.0.1", Initiator: "iqn.2026-11.io.volattach.test:compute-1"}

// newBackend returns a backend on the test cluster whose log is captured.
func newBackend(t *testing.T) (*rbd.Backend, *logtest.Hook) {
	t.Helper()
	cfg := rbdtest.Config(t)
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	cfg.Log = log
	b, err := rbd.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b, hook
}

// newVolume returns a volume with an id unique to the run, whose image is
// removed when t ends.
func newVolume(t *testing.T, b *rbd.Backend, size int64) volume.Volume {
	t.Helper()
	v := volume.Volume{ID: "vt-" + rbdtest.NewUUID(), SizeBytes: size}
	t.Cleanup(func() {
		if err := b.DeleteVolume(context.Background(), v); err != nil {
			t.Errorf("cleanup: DeleteVolume: %v", err)
		}
	})
	return v
}

func twice(t *testing.T, what string, op func() error) {
	t.Helper()
	for i := 1; i <= 2; i++ {
		if err := op(); err != nil {
			t.Fatalf("%s (call %d): %v", what, i, err)
		}
	}
}

// requireNoImage fails t when the volume's image is in the pool.
func requireNoImage(t *testing.T, b *rbd.Backend, id string) {
	t.Helper()
	ids, err := b.ListVolumes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(ids, id) {
		t.Fatalf("image of volume %s is still in the pool", id)
	}
}

func TestVolumeLifecycleThroughQemuIO(t *testing.T) {
	ctx := context.Background()
	b, hook := newBackend(t)
	v := newVolume(t, b, 8*mib)

	twice(t, "CreateVolume", func() error { return b.CreateVolume(ctx, v) })
	if err := b.Stat(ctx, v); err != nil {
		t.Fatalf("Stat: %v", err)
	}
	twice(t, "CreateExport", func() error { return b.CreateExport(ctx, v, connector) })
	var infos []volume.ConnectionInfo
	twice(t, "InitializeConnection", func() error {
		info, err := b.InitializeConnection(ctx, v, connector)
		infos = append(infos, info)
		return err
	})
	info := infos[0]
	if info.String() != infos[1].String() {
		t.Fatalf("InitializeConnection not idempotent: %s then %s", infos[0], infos[1])
	}
	spec, _ := b.ImageSpec(v.ID)
	want := map[string]string{
		volume.DataExportName: spec, volume.DataHosts: "127.0.0.1", volume.DataPorts: "3300",
		volume.DataAuthEnabled: "true", volume.DataAuthUsername: rbdtest.User, volume.DataSecretType: "ceph",
		volume.DataClusterName: "ceph", volume.DataVolumeID: v.ID,
	}
	for k, w := range want {
		if info.Data[k] != w {
			t.Errorf("connection_info %s = %q, want %q (%s)", k, info.Data[k], w, info)
		}
	}
	if info.DriverVolumeType != volume.DriverRBD || info.Data[volume.DataSecretUUID] == "" {
		t.Fatalf("connection_info = %s, want rbd with a secret_uuid", info)
	}
	if err := qemuio.WriteRead(ctx, rbdtest.QemuImage(spec), 0xab, 0, 64<<10); err != nil {
		t.Fatal(err)
	}
	twice(t, "TerminateConnection", func() error { return b.TerminateConnection(ctx, v, connector) })
	twice(t, "RemoveExport", func() error { return b.RemoveExport(ctx, v) })
	if got, err := b.ListExports(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ListExports = %v, %v: an RBD image has no export", got, err)
	}
	twice(t, "DeleteVolume", func() error { return b.DeleteVolume(ctx, v) })
	requireNoImage(t, b, v.ID)
	if err := b.Stat(ctx, v); !errors.Is(err, storage.ErrVolumeNotFound) {
		t.Fatalf("Stat after delete = %v, want ErrVolumeNotFound", err)
	}
	// The key is in no log entry (the backend only names its keyring).
	key := keyOf(t, rbdtest.Keyring())
	for _, e := range hook.AllEntries() {
		if s, _ := e.String(); strings.Contains(s, key) {
			t.Fatalf("log entry shows the cephx key: %s", s)
		}
	}
}

func TestCreateVolumeIsIdempotentAndRefusesConflicts(t *testing.T) {
	ctx := context.Background()
	b, _ := newBackend(t)
	v := newVolume(t, b, 4*mib)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = b.CreateVolume(ctx, v) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent CreateVolume %d: %v", i, err)
		}
	}
	spec, _ := b.ImageSpec(v.ID)
	if _, err := qemuio.Run(ctx, rbdtest.QemuImage(spec), "write -P 0x5a 0 4k"); err != nil {
		t.Fatal(err)
	}
	other := v
	other.SizeBytes = 8 * mib
	if err := b.CreateVolume(ctx, other); !errors.Is(err, storage.ErrVolumeConflict) {
		t.Fatalf("CreateVolume of another size = %v, want ErrVolumeConflict", err)
	}
	shared := v
	shared.Multiattach = true
	if err := b.CreateVolume(ctx, shared); !errors.Is(err, storage.ErrVolumeConflict) {
		t.Fatalf("CreateVolume as multiattach over an exclusive-lock image = %v, want ErrVolumeConflict", err)
	}
	if _, err := qemuio.Run(ctx, rbdtest.QemuImage(spec), "read -P 0x5a 0 4k"); err != nil {
		t.Fatalf("data changed by a refused CreateVolume: %v", err)
	}
}

func TestMultiattachImageHasNoExclusiveLock(t *testing.T) {
	ctx := context.Background()
	b, _ := newBackend(t)
	v := newVolume(t, b, 4*mib)
	v.Multiattach = true
	twice(t, "CreateVolume", func() error { return b.CreateVolume(ctx, v) })
	spec, _ := b.ImageSpec(v.ID)
	out := rbdInfo(t, spec)
	if !strings.Contains(out, `"features":["layering"]`) {
		t.Fatalf("multiattach image features: %s, want layering only", out)
	}
}

func TestBadInputIsRefusedAndLeavesNothing(t *testing.T) {
	ctx := context.Background()
	b, _ := newBackend(t)
	for _, id := range []string{"", "../x", "a/b", "a@snap", "a:b", ".hidden"} {
		v := volume.Volume{ID: id, SizeBytes: mib}
		if err := b.CreateVolume(ctx, v); !errors.Is(err, storage.ErrInvalidVolumeID) {
			t.Errorf("CreateVolume(%q) = %v, want ErrInvalidVolumeID", id, err)
		}
		if _, err := b.InitializeConnection(ctx, v, connector); !errors.Is(err, storage.ErrInvalidVolumeID) {
			t.Errorf("InitializeConnection(%q) = %v, want ErrInvalidVolumeID", id, err)
		}
		if err := b.DeleteVolume(ctx, v); !errors.Is(err, storage.ErrInvalidVolumeID) {
			t.Errorf("DeleteVolume(%q) = %v, want ErrInvalidVolumeID", id, err)
		}
	}
	v := newVolume(t, b, mib)
	for _, bad := range []volume.Volume{
		{ID: v.ID},
		{ID: v.ID, SizeBytes: mib, Format: "qcow2"},
		{ID: v.ID, SizeBytes: mib, Encryption: &volume.Encryption{Provider: volume.EncryptionLUKS}},
	} {
		if err := b.CreateVolume(ctx, bad); err == nil {
			t.Errorf("CreateVolume(%+v) succeeded", bad)
		}
	}
	requireNoImage(t, b, v.ID)
	if _, err := b.InitializeConnection(ctx, v, connector); !errors.Is(err, storage.ErrVolumeNotFound) {
		t.Fatalf("InitializeConnection of a missing image = %v, want ErrVolumeNotFound", err)
	}
	if err := b.CreateExport(ctx, v, connector); !errors.Is(err, storage.ErrExportFailure) || !errors.Is(err, storage.ErrVolumeNotFound) {
		t.Fatalf("CreateExport of a missing image = %v, want ErrExportFailure and ErrVolumeNotFound", err)
	}
	if err := b.CreateVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	for _, c := range []volume.Connector{{}, {Host: "h"}, {IP: "not-an-ip"}, {IP: "127.0.0.1", Mode: "rx"}} {
		if err := b.CreateExport(ctx, v, c); !errors.Is(err, storage.ErrInvalidConnector) {
			t.Errorf("CreateExport(%+v) = %v, want ErrInvalidConnector", c, err)
		}
		if _, err := b.InitializeConnection(ctx, v, c); !errors.Is(err, storage.ErrInvalidConnector) {
			t.Errorf("InitializeConnection(%+v) = %v, want ErrInvalidConnector", c, err)
		}
	}
}

func TestUnknownPoolAndWrongKeyAreTyped(t *testing.T) {
	ctx := context.Background()
	good := rbdtest.Config(t)
	admin, _ := newBackend(t)
	id := "vt-" + rbdtest.NewUUID()

	noPool := good
	noPool.Pool = "no-such-pool-" + strings.ReplaceAll(rbdtest.NewUUID(), "-", "")[:8]
	wrongKey := good
	wrongKey.Keyring = rbdtest.WrongKeyring(t)
	for name, tc := range map[string]struct {
		cfg  rbd.Config
		want error
	}{
		"unknown pool": {noPool, rbd.ErrPoolNotFound},
		"wrong key":    {wrongKey, rbd.ErrAuthFailed},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := rbd.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.CheckSetup(ctx); !errors.Is(err, tc.want) || !errors.Is(err, storage.ErrInvalidConfig) {
				t.Fatalf("CheckSetup = %v, want %v", err, tc.want)
			}
			v := volume.Volume{ID: id, SizeBytes: mib}
			if err := b.CreateVolume(ctx, v); !errors.Is(err, tc.want) {
				t.Fatalf("CreateVolume = %v, want %v", err, tc.want)
			}
			if _, err := b.InitializeConnection(ctx, v, connector); !errors.Is(err, tc.want) {
				t.Fatalf("InitializeConnection = %v, want %v", err, tc.want)
			}
			if err := b.DeleteVolume(ctx, v); !errors.Is(err, tc.want) {
				t.Fatalf("DeleteVolume = %v, want %v (not a silent success)", err, tc.want)
			}
			key := keyOf(t, tc.cfg.Keyring)
			if strings.Contains(fmt.Sprint(b.CreateVolume(ctx, v)), key) {
				t.Fatal("the error shows the key")
			}
			requireNoImage(t, admin, id)
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	good := rbdtest.Config(t)
	mod := func(f func(*rbd.Config)) rbd.Config { c := good; f(&c); return c }
	for name, cfg := range map[string]rbd.Config{
		"no conf":         mod(func(c *rbd.Config) { c.ConfFile = "" }),
		"no keyring":      mod(func(c *rbd.Config) { c.Keyring = "" }),
		"missing keyring": mod(func(c *rbd.Config) { c.Keyring = "/nonexistent/keyring" }),
		"bad pool":        mod(func(c *rbd.Config) { c.Pool = "-x" }),
		"client. user":    mod(func(c *rbd.Config) { c.User = "client.volattach" }),
		"bad secret uuid": mod(func(c *rbd.Config) { c.SecretUUID = "nope" }),
		"bad monitor":     mod(func(c *rbd.Config) { c.Monitors = []string{"127.0.0.1"} }),
		"open keyring":    mod(func(c *rbd.Config) { c.Keyring = openKeyring(t) }),
	} {
		if _, err := rbd.New(cfg); !errors.Is(err, storage.ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
	}
}
