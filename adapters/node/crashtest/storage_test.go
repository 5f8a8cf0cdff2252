package crashtest_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/rbd"
	"github.com/volattach/volattach/adapters/storage/rbd/rbdtest"
	"github.com/volattach/volattach/volume"
)

// The agent's storage comes in its environment too: envBackend names the
// backend (file.BackendName when unset), envVolumeDir the file backend's
// directory, envCephSecret the UUID of the host's libvirt ceph secret (the
// cluster is rbdtest's, found through VOLATTACH_CEPH_DIR like the test's).
const (
	envBackend    = "VOLATTACH_CRASHTEST_BACKEND"
	envCephSecret = "VOLATTACH_CRASHTEST_CEPH_SECRET"
)

// backends are the storage backends every SIGKILL crash point runs on.
var backends = []string{file.BackendName, rbd.BackendName}

// storage is the volume backend of one scene, shared by the test's own
// nodes and the agent processes: the file backend over a directory QEMU
// can reach, or the RBD backend on the Ceph cluster of scripts/env-ceph.sh
// with a libvirt ceph secret UUID of the scene's own.
type storage struct {
	kind       string
	dir        string // file
	secretUUID string // rbd
}

// newStorage sets up a scene's storage of kind and registers its cleanup:
// for RBD, the image of every volume the scene created is removed and the
// scene's ceph secret undefined, even when the test fails (the caller
// registers this before the guest, so the guest has let go of the images
// when it runs). created receives the id of each volume the scene creates.
func newStorage(t *testing.T, kind string) (st storage, created func(id string)) {
	t.Helper()
	st = storage{kind: kind}
	switch kind {
	case file.BackendName:
		st.dir = volumeDir(t)
		return st, func(string) {}
	case rbd.BackendName:
	default:
		t.Fatalf("no backend %q", kind)
	}
	cfg := rbdtest.Config(t) // skips, or fails under VOLATTACH_REQUIRE_ENV, without the cluster
	st.secretUUID = cfg.SecretUUID
	stateDir := t.TempDir()
	var mu sync.Mutex
	var ids []string
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), libvirttest.CleanupTimeout)
		defer cancel()
		b, err := rbd.New(cfg)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if err := b.DeleteVolume(ctx, volume.Volume{ID: id}); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		left, err := b.ListVolumes(ctx)
		if err != nil {
			t.Errorf("cleanup: list images: %v", err)
		}
		for _, id := range left {
			if slices.Contains(ids, id) {
				t.Errorf("cleanup: the image of volume %s is still in the pool", id)
			}
		}
		a, err := libvirt.New(libvirt.WithInitiatorFile(""), libvirt.WithStateDir(stateDir),
			libvirt.WithCephSecret(libvirt.CephSecret{UUID: cfg.SecretUUID, User: cfg.User, Keyring: cfg.Keyring}))
		if err == nil {
			err = a.RemoveCephSecret(ctx)
			a.Close()
		}
		if err != nil {
			t.Errorf("cleanup: remove the scene's ceph secret: %v", err)
		}
	})
	return st, func(id string) {
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, id)
	}
}

// storageFromEnv is the agent process's storage.
func storageFromEnv() storage {
	kind := os.Getenv(envBackend)
	if kind == "" {
		kind = file.BackendName
	}
	return storage{kind: kind, dir: os.Getenv(envVolumeDir), secretUUID: os.Getenv(envCephSecret)}
}

// env is the agent process's environment for st.
func (st storage) env() map[string]string {
	return map[string]string{envBackend: st.kind, envVolumeDir: st.dir, envCephSecret: st.secretUUID}
}

// backend builds st's backend, wrapped by wrap, and the libvirt options
// the host needs for it (the ceph secret's user, keyring and UUID for
// RBD, as node.Config.RBD would give them).
func (st storage) backend(wrap func(volume.Backend) volume.Backend) (volume.Backend, []libvirt.Option, error) {
	switch st.kind {
	case file.BackendName:
		fb, err := file.New(file.Config{Dir: st.dir})
		if err != nil {
			return nil, nil, err
		}
		return wrap(fb), nil, nil
	case rbd.BackendName:
		cfg := rbd.Config{ConfFile: rbdtest.ConfFile(), Keyring: rbdtest.Keyring(), User: rbdtest.User,
			Pool: rbdtest.Pool, SecretUUID: st.secretUUID}
		rb, err := rbd.New(cfg)
		if err != nil {
			return nil, nil, err
		}
		secret := libvirt.CephSecret{UUID: cfg.SecretUUID, User: cfg.User, Keyring: cfg.Keyring}
		return wrap(rb), []libvirt.Option{libvirt.WithCephSecret(secret)}, nil
	}
	return nil, nil, fmt.Errorf("no backend %q", st.kind)
}
