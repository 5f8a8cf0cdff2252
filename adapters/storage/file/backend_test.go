package file_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/internal/qemuio"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/volume"
)

const mib = 1 << 20

var connector = volume.Connector{Host: "compute-1", IP: "127.0.0.1", Initiator: "iqn.2026-11.io.volattach.test:compute-1"}

func newBackend(t *testing.T, format string) *file.Backend {
	t.Helper()
	testenv.NeedCommand(t, "qemu-img", "qemu-io")
	log, _ := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	b, err := file.New(file.Config{Dir: t.TempDir(), DefaultFormat: format, Log: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

// twice runs op two times: every backend call is idempotent.
func twice(t *testing.T, what string, op func() error) {
	t.Helper()
	for i := 1; i <= 2; i++ {
		if err := op(); err != nil {
			t.Fatalf("%s (call %d): %v", what, i, err)
		}
	}
}

func TestVolumeLifecycleThroughQemuIO(t *testing.T) {
	for _, format := range []string{file.FormatQCOW2, file.FormatRaw} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBackend(t, file.FormatQCOW2)
			v := volume.Volume{ID: "0b7b3e24-4d3c-4b8a-9f3e-2f1d4c5b6a79", SizeBytes: 4 * mib, Format: format}

			twice(t, "CreateVolume", func() error { return b.CreateVolume(ctx, v) })
			if err := b.Stat(ctx, v); err != nil {
				t.Fatalf("Stat after create: %v", err)
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
			path, _ := b.Path(v.ID)
			if info.DriverVolumeType != volume.DriverFile || info.Data[volume.DataPath] != path ||
				info.Data[volume.DataFormat] != format || info.Data[volume.DataVolumeID] != v.ID {
				t.Fatalf("connection_info = %s, want file with path %s and format %s", info, path, format)
			}
			img := qemuio.Image{"-f", info.Data[volume.DataFormat], info.Data[volume.DataPath]}
			if err := qemuio.WriteRead(ctx, img, 0xab, 0, 64<<10); err != nil {
				t.Fatal(err)
			}
			twice(t, "TerminateConnection", func() error { return b.TerminateConnection(ctx, v, connector) })
			twice(t, "RemoveExport", func() error { return b.RemoveExport(ctx, v) })
			twice(t, "DeleteVolume", func() error { return b.DeleteVolume(ctx, v) })
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("volume file after DeleteVolume: %v, want not exist", err)
			}
			assertDirEmpty(t, b.Dir())
		})
	}
}

func TestDefaultFormatIsQCOW2(t *testing.T) {
	ctx := context.Background()
	b, err := file.New(file.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	testenv.NeedCommand(t, "qemu-img")
	v := volume.Volume{ID: "vol-default", SizeBytes: mib}
	if err := b.CreateVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	// The same file read as raw is not a 1 MiB image: it really is qcow2.
	if err := b.Stat(ctx, volume.Volume{ID: v.ID, SizeBytes: mib, Format: file.FormatQCOW2}); err != nil {
		t.Fatalf("Stat as qcow2: %v", err)
	}
	if err := b.Stat(ctx, volume.Volume{ID: v.ID, SizeBytes: mib, Format: file.FormatRaw}); !errors.Is(err, storage.ErrVolumeConflict) {
		t.Fatalf("Stat as raw = %v, want ErrVolumeConflict", err)
	}
}

func TestCreateVolumeConflictLeavesFileAlone(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, file.FormatRaw)
	v := volume.Volume{ID: "vol-1", SizeBytes: mib}
	if err := b.CreateVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	path, _ := b.Path(v.ID)
	img := qemuio.Image{"-f", "raw", path}
	if _, err := qemuio.Run(ctx, img, "write -P 0x5a 0 4k"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		v    volume.Volume
	}{
		{"other size", volume.Volume{ID: v.ID, SizeBytes: 2 * mib}},
		{"other format", volume.Volume{ID: v.ID, SizeBytes: mib, Format: file.FormatQCOW2}},
	}
	for _, tt := range tests {
		if err := b.CreateVolume(ctx, tt.v); !errors.Is(err, storage.ErrVolumeConflict) {
			t.Errorf("%s: CreateVolume = %v, want ErrVolumeConflict", tt.name, err)
		}
	}
	if _, err := qemuio.Run(ctx, img, "read -P 0x5a 0 4k"); err != nil {
		t.Fatalf("data changed by a refused CreateVolume: %v", err)
	}
	// A size that rounds up to the same 512-byte sector is the same volume.
	if err := b.CreateVolume(ctx, volume.Volume{ID: v.ID, SizeBytes: mib - 100, Format: file.FormatRaw}); err != nil {
		t.Fatalf("CreateVolume of a size in the same last sector = %v, want nil", err)
	}
}

func TestConcurrentCreateVolumeMakesOneFile(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, file.FormatQCOW2)
	v := volume.Volume{ID: "vol-race", SizeBytes: mib}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = b.CreateVolume(ctx, v) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("CreateVolume %d: %v", i, err)
		}
	}
	entries, err := os.ReadDir(b.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != v.ID {
		t.Fatalf("directory holds %v, want only %s (no temporary files left)", names(entries), v.ID)
	}
}

func TestBadInputIsRefusedAndLeavesNothing(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	dir := filepath.Join(parent, "volumes")
	b, err := file.New(file.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	testenv.NeedCommand(t, "qemu-img")
	good := volume.Volume{ID: "vol-ok", SizeBytes: mib}
	tests := []struct {
		name string
		v    volume.Volume
		c    volume.Connector
		want error
	}{
		{"empty id", volume.Volume{ID: "", SizeBytes: mib}, connector, storage.ErrInvalidVolumeID},
		{"parent traversal", volume.Volume{ID: "../escape", SizeBytes: mib}, connector, storage.ErrInvalidVolumeID},
		{"dot dot", volume.Volume{ID: "..", SizeBytes: mib}, connector, storage.ErrInvalidVolumeID},
		{"absolute path", volume.Volume{ID: "/tmp/escape", SizeBytes: mib}, connector, storage.ErrInvalidVolumeID},
		{"slash", volume.Volume{ID: "a/b", SizeBytes: mib}, connector, storage.ErrInvalidVolumeID},
		{"unknown format", volume.Volume{ID: "vol-fmt", SizeBytes: mib, Format: "vmdk"}, connector, storage.ErrUnknownFormat},
		{"zero size", volume.Volume{ID: "vol-size", Format: file.FormatRaw}, connector, storage.ErrInvalidSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := b.CreateVolume(ctx, tt.v); !errors.Is(err, tt.want) {
				t.Errorf("CreateVolume = %v, want %v", err, tt.want)
			}
			if tt.want == storage.ErrInvalidVolumeID {
				checkAll(t, b, tt.v, tt.c, tt.want)
			}
		})
	}
	badConnectors := []volume.Connector{{}, {Host: "compute-1"}, {IP: "not-an-ip"}, {IP: "127.0.0.1", Mode: "rx"}}
	if err := b.CreateVolume(ctx, good); err != nil {
		t.Fatal(err)
	}
	for _, c := range badConnectors {
		if err := b.CreateExport(ctx, good, c); !errors.Is(err, storage.ErrInvalidConnector) {
			t.Errorf("CreateExport(%+v) = %v, want ErrInvalidConnector", c, err)
		}
		if _, err := b.InitializeConnection(ctx, good, c); !errors.Is(err, storage.ErrInvalidConnector) {
			t.Errorf("InitializeConnection(%+v) = %v, want ErrInvalidConnector", c, err)
		}
		if err := b.TerminateConnection(ctx, good, c); !errors.Is(err, storage.ErrInvalidConnector) {
			t.Errorf("TerminateConnection(%+v) = %v, want ErrInvalidConnector", c, err)
		}
	}
	if err := b.DeleteVolume(ctx, good); err != nil {
		t.Fatal(err)
	}
	assertDirEmpty(t, dir)
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Fatalf("parent directory holds %v, want only volumes/", names(entries))
	}
}

func checkAll(t *testing.T, b *file.Backend, v volume.Volume, c volume.Connector, want error) {
	t.Helper()
	ctx := context.Background()
	errs := map[string]error{
		"DeleteVolume":        b.DeleteVolume(ctx, v),
		"CreateExport":        b.CreateExport(ctx, v, c),
		"RemoveExport":        b.RemoveExport(ctx, v),
		"TerminateConnection": b.TerminateConnection(ctx, v, c),
	}
	_, errs["InitializeConnection"] = b.InitializeConnection(ctx, v, c)
	for op, err := range errs {
		if !errors.Is(err, want) {
			t.Errorf("%s = %v, want %v", op, err, want)
		}
	}
}

func TestConnectionNeedsTheVolume(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, file.FormatRaw)
	v := volume.Volume{ID: "vol-missing", SizeBytes: mib}
	if _, err := b.InitializeConnection(ctx, v, connector); !errors.Is(err, storage.ErrVolumeNotFound) {
		t.Fatalf("InitializeConnection = %v, want ErrVolumeNotFound", err)
	}
	if err := b.CreateExport(ctx, v, connector); !errors.Is(err, storage.ErrExportFailure) || !errors.Is(err, storage.ErrVolumeNotFound) {
		t.Fatalf("CreateExport = %v, want ErrExportFailure and ErrVolumeNotFound", err)
	}
}

func TestAccessModeEchoesTheConnector(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, file.FormatRaw)
	v := volume.Volume{ID: "vol-ro", SizeBytes: mib}
	if err := b.CreateVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"", "rw", "ro"} {
		c := connector
		c.Mode = mode
		info, err := b.InitializeConnection(ctx, v, c)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := info.Data[volume.DataAccessMode]; (mode == "" && ok) || (mode != "" && got != mode) {
			t.Errorf("mode %q: access_mode = %q (present %v)", mode, got, ok)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, cfg := range []file.Config{{}, {Dir: t.TempDir(), DefaultFormat: "vmdk"}} {
		if _, err := file.New(cfg); !errors.Is(err, storage.ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

func TestQemuImgFailureCarriesStderr(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := file.New(file.Config{Dir: dir, QemuImg: "/bin/false"})
	if err != nil {
		t.Fatal(err)
	}
	err = b.CreateVolume(ctx, volume.Volume{ID: "vol-x", SizeBytes: mib})
	var ce *storage.CommandError
	if !errors.As(err, &ce) || ce.Name != "/bin/false" || ce.ExitCode != 1 {
		t.Fatalf("CreateVolume with a failing qemu-img = %v, want a CommandError with exit 1", err)
	}
	if !strings.Contains(err.Error(), "create -q -f qcow2") {
		t.Fatalf("error %q does not show the command", err)
	}
	assertDirEmpty(t, dir)
}

func assertDirEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("%s holds %v, want nothing", dir, names(entries))
	}
}

func names(entries []os.DirEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
