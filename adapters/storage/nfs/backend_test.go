package nfs_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/internal/qemuio"
	"github.com/volattach/volattach/adapters/storage/nfs"
	"github.com/volattach/volattach/adapters/storage/nfs/nfstest"
	"github.com/volattach/volattach/volume"
)

const mib = 1 << 20

var connector = volume.Connector{Host: "compute-1", IP: "127.0.0.1"}

func newBackend(t *testing.T, edit ...func(*nfs.Config)) *nfs.Backend {
	t.Helper()
	cfg := nfstest.Config(t)
	for _, e := range edit {
		e(&cfg)
	}
	b, err := nfs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func twice(t *testing.T, what string, op func() error) {
	t.Helper()
	for i := 1; i <= 2; i++ {
		if err := op(); err != nil {
			t.Fatalf("%s (call %d): %v", what, i, err)
		}
	}
}

func TestVolumeLifecycleThroughTheExport(t *testing.T) {
	for _, format := range []string{file.FormatRaw, file.FormatQCOW2} {
		t.Run(format, func(t *testing.T) {
			ctx := context.Background()
			b := newBackend(t)
			if err := b.CheckSetup(ctx); err != nil {
				t.Fatalf("CheckSetup: %v", err)
			}
			v := volume.Volume{ID: "vol-nfs-" + format, SizeBytes: 4 * mib, Format: format}
			twice(t, "CreateVolume", func() error { return b.CreateVolume(ctx, v) })
			path, _ := b.Path(v.ID)
			if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o660 {
				t.Fatalf("volume file mode %v, %v; want 0660", st.Mode(), err)
			}
			twice(t, "CreateExport", func() error { return b.CreateExport(ctx, v, connector) })
			info, err := b.InitializeConnection(ctx, v, connector)
			if err != nil {
				t.Fatal(err)
			}
			if info.DriverVolumeType != volume.DriverNFS || info.Data[volume.DataExport] != b.Share() ||
				info.Data[volume.DataExportName] != v.ID || info.Data[volume.DataFormat] != format {
				t.Fatalf("connection_info %s: want nfs, export %s, name %s, format %s", info, b.Share(), v.ID, format)
			}
			url, _ := b.URL(v.ID)
			if err := qemuio.WriteRead(ctx, qemuio.Image{"-f", format, url}, 0x2e, 0, 64<<10); err != nil {
				t.Fatal(err)
			}
			// What went through the export is in the local file.
			if _, err := qemuio.Run(ctx, qemuio.Image{"-f", format, path}, "read -P 0x2e 0 64k"); err != nil {
				t.Fatal(err)
			}
			twice(t, "TerminateConnection", func() error { return b.TerminateConnection(ctx, v, connector) })
			twice(t, "RemoveExport", func() error { return b.RemoveExport(ctx, v) })
			twice(t, "DeleteVolume", func() error { return b.DeleteVolume(ctx, v) })
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("volume file after delete: %v", err)
			}
		})
	}
}

// TestExportThatDoesNotExist: a share path the server does not export
// fails CheckSetup and InitializeConnection with ErrExportNotFound, and a
// volume created meanwhile is the only thing to remove.
func TestExportThatDoesNotExist(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, func(c *nfs.Config) { c.ExportPath = "/no/such/export" })
	if err := b.CheckSetup(ctx); !errors.Is(err, storage.ErrExportNotFound) {
		t.Fatalf("CheckSetup = %v, want ErrExportNotFound", err)
	}
	v := volume.Volume{ID: "vol-1", SizeBytes: mib}
	if err := b.CreateVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	if _, err := b.InitializeConnection(ctx, v, connector); !errors.Is(err, storage.ErrExportNotFound) {
		t.Fatalf("InitializeConnection = %v, want ErrExportNotFound", err)
	}
	if err := b.DeleteVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
}

func TestBadInputIsRefused(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	for _, id := range []string{"", "../x", "a/b", ".hidden"} {
		v := volume.Volume{ID: id, SizeBytes: mib}
		if err := b.CreateVolume(ctx, v); !errors.Is(err, storage.ErrInvalidVolumeID) {
			t.Errorf("CreateVolume(%q) = %v, want ErrInvalidVolumeID", id, err)
		}
		if _, err := b.InitializeConnection(ctx, v, connector); !errors.Is(err, storage.ErrInvalidVolumeID) {
			t.Errorf("InitializeConnection(%q) = %v, want ErrInvalidVolumeID", id, err)
		}
	}
	v := volume.Volume{ID: "vol-1", SizeBytes: mib}
	if _, err := b.InitializeConnection(ctx, v, connector); !errors.Is(err, storage.ErrVolumeNotFound) {
		t.Fatalf("InitializeConnection of a missing volume = %v, want ErrVolumeNotFound", err)
	}
	if err := b.CreateVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.DeleteVolume(ctx, v) })
	for _, c := range []volume.Connector{{}, {Host: "h"}, {IP: "nope"}} {
		if _, err := b.InitializeConnection(ctx, v, c); !errors.Is(err, storage.ErrInvalidConnector) {
			t.Errorf("InitializeConnection(%+v) = %v, want ErrInvalidConnector", c, err)
		}
	}
	for name, cfg := range map[string]nfs.Config{
		"no dir":         {},
		"remote server":  {Dir: t.TempDir(), Server: "192.0.2.1"},
		"not an address": {Dir: t.TempDir(), Server: "nfs.example"},
		"relative path":  {Dir: t.TempDir(), ExportPath: "export"},
		"unknown group":  {Dir: t.TempDir(), QemuGroup: "no-such-group-volattach"},
	} {
		if _, err := nfs.New(cfg); !errors.Is(err, storage.ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
	}
}
