package nbd_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/internal/qemuio"
	"github.com/volattach/volattach/adapters/storage/nbd"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/volume"
)

const mib = 1 << 20

var connector = volume.Connector{Host: "compute-1", IP: "127.0.0.1", Initiator: "iqn.2026-11.io.volattach.test:compute-1"}

// stateDirs are every state directory a test used; TestMain checks that no
// qemu-nbd of theirs outlives the tests.
var stateDirs sync.Map

func TestMain(m *testing.M) {
	code := m.Run()
	stateDirs.Range(func(dir, _ any) bool {
		for _, pid := range nbd.ServerPIDs(dir.(string)) {
			fmt.Fprintf(os.Stderr, "qemu-nbd %d (state %s) outlived the tests; killing it\n", pid, dir)
			syscall.Kill(pid, syscall.SIGKILL)
			code = 1
		}
		return true
	})
	os.Exit(code)
}

type fixture struct {
	cfg    nbd.Config
	b      *nbd.Backend
	events chan nbd.Event
}

// newFixture makes a backend on fresh directories. Its cleanup fails the
// test if any qemu-nbd of the state directory is still running once the
// test's own cleanups have run, and kills it.
func newFixture(t *testing.T, mutate func(*nbd.Config)) *fixture {
	t.Helper()
	testenv.NeedCommand(t, "qemu-nbd", "qemu-img", "qemu-io")
	log, _ := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	f := &fixture{events: make(chan nbd.Event, 16)}
	f.cfg = nbd.Config{
		Dir: t.TempDir(), StateDir: t.TempDir(), Log: log, StopOnClose: true,
		OnEvent: func(e nbd.Event) { f.events <- e },
	}
	if mutate != nil {
		mutate(&f.cfg)
	}
	stateDirs.Store(f.cfg.StateDir, true)
	t.Cleanup(func() {
		for _, pid := range nbd.ServerPIDs(f.cfg.StateDir) {
			t.Errorf("qemu-nbd %d outlived the test; killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	f.b = f.newBackend(t)
	return f
}

// newBackend makes another backend on the fixture's configuration, closed
// at cleanup.
func (f *fixture) newBackend(t *testing.T) *nbd.Backend {
	t.Helper()
	b, err := nbd.New(f.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// exported creates a volume, exports it and initialises a connection.
func (f *fixture) exported(t *testing.T, id string) (volume.Volume, volume.ConnectionInfo) {
	t.Helper()
	ctx := context.Background()
	v := volume.Volume{ID: id, SizeBytes: mib}
	if err := f.b.CreateVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := f.b.CreateExport(ctx, v, connector); err != nil {
		t.Fatal(err)
	}
	info, err := f.b.InitializeConnection(ctx, v, connector)
	if err != nil {
		t.Fatal(err)
	}
	return v, info
}

// onePID returns the single qemu-nbd of the fixture's state directory.
func (f *fixture) onePID(t *testing.T) int {
	t.Helper()
	pids := nbd.ServerPIDs(f.cfg.StateDir)
	if len(pids) != 1 {
		t.Fatalf("%d qemu-nbd processes for the state directory, want 1: %v", len(pids), pids)
	}
	return pids[0]
}

// waitEvent returns the next event, failing after a deadline.
func (f *fixture) waitEvent(t *testing.T) nbd.Event {
	t.Helper()
	select {
	case e := <-f.events:
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no export event")
		return nbd.Event{}
	}
}

func image(info volume.ConnectionInfo) qemuio.Image {
	d := info.Data
	return qemuio.Image{"-f", "raw", fmt.Sprintf("nbd://%s/%s", net.JoinHostPort(d[volume.DataHost], d[volume.DataPort]), d[volume.DataExportName])}
}

func addr(info volume.ConnectionInfo) string {
	return net.JoinHostPort(info.Data[volume.DataHost], info.Data[volume.DataPort])
}

// portClosed checks nothing listens at addr any more.
func portClosed(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
}

// kill kills pid the way a crash would and waits until it is dead.
func kill(t *testing.T, stateDir string, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for nbd.Running(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("qemu-nbd %d survived SIGKILL", pid)
		}
		time.Sleep(5 * time.Millisecond) // polling an outside process's exit
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

func TestExportLifecycleThroughQemuIO(t *testing.T) {
	for _, format := range []string{file.FormatRaw, file.FormatQCOW2} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t, nil)
			b := f.b
			v := volume.Volume{ID: "vol-" + format, SizeBytes: 4 * mib, Format: format}
			path, _ := b.Path(v.ID)

			twice(t, "CreateVolume", func() error { return b.CreateVolume(ctx, v) })
			twice(t, "CreateExport", func() error { return b.CreateExport(ctx, v, connector) })
			pid := f.onePID(t)
			var infos []volume.ConnectionInfo
			twice(t, "InitializeConnection", func() error {
				info, err := b.InitializeConnection(ctx, v, connector)
				infos = append(infos, info)
				return err
			})
			info := infos[0]
			if infos[1].String() != info.String() {
				t.Fatalf("InitializeConnection not idempotent: %s then %s", info, infos[1])
			}
			if info.DriverVolumeType != volume.DriverNBD || info.Data[volume.DataHost] != "127.0.0.1" ||
				info.Data[volume.DataExportName] != v.ID || info.Data[volume.DataPort] == "" {
				t.Fatalf("connection_info = %s", info)
			}
			if got := f.onePID(t); got != pid {
				t.Fatalf("a second CreateExport or InitializeConnection started qemu-nbd %d besides %d", got, pid)
			}
			if err := qemuio.WriteRead(ctx, image(info), 0xab, 0, 64<<10); err != nil {
				t.Fatal(err)
			}
			// The export shows the guest's bytes whatever the file format:
			// read back from the file itself.
			if _, err := qemuio.Run(ctx, qemuio.Image{"-r", "-U", "-f", format, path}, "read -P 0xab 0 64k"); err != nil {
				t.Fatal(err)
			}

			twice(t, "TerminateConnection", func() error { return b.TerminateConnection(ctx, v, connector) })
			twice(t, "RemoveExport", func() error { return b.RemoveExport(ctx, v) })
			portClosed(t, addr(info))
			if pids := nbd.ServerPIDs(f.cfg.StateDir); len(pids) != 0 {
				t.Fatalf("qemu-nbd %v still running after RemoveExport", pids)
			}
			if entries, _ := os.ReadDir(f.cfg.StateDir); len(entries) != 0 {
				t.Fatalf("state directory after RemoveExport holds %v", entries)
			}
			if _, err := b.InitializeConnection(ctx, v, connector); !errors.Is(err, storage.ErrExportNotFound) {
				t.Fatalf("InitializeConnection after RemoveExport = %v, want ErrExportNotFound", err)
			}
			twice(t, "DeleteVolume", func() error { return b.DeleteVolume(ctx, v) })
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("volume file after DeleteVolume: %v", err)
			}
		})
	}
}

func TestRestartedBackendFindsTheRunningExport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, func(c *nbd.Config) { c.StopOnClose = false })
	v, info := f.exported(t, "vol-restart")
	pid := f.onePID(t)
	if err := f.b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// By default exports outlive the backend: guests use them.
	if got := f.onePID(t); got != pid {
		t.Fatalf("qemu-nbd %d replaced %d after Close", got, pid)
	}

	b2 := f.newBackend(t) // a new process on the same state directory
	twice(t, "CreateExport", func() error { return b2.CreateExport(ctx, v, connector) })
	info2, err := b2.InitializeConnection(ctx, v, connector)
	if err != nil {
		t.Fatal(err)
	}
	if info2.String() != info.String() || f.onePID(t) != pid {
		t.Fatalf("restarted backend: %s (pid %d), want the running export %s (pid %d)", info2, f.onePID(t), info, pid)
	}
	if err := qemuio.WriteRead(ctx, image(info2), 0x42, 0, 4096); err != nil {
		t.Fatal(err)
	}
	if err := b2.DeleteVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	portClosed(t, addr(info))
	select {
	case e := <-f.events:
		t.Fatalf("unexpected event %+v: nothing died", e)
	default:
	}
}

func TestDeadExportIsRestartedOnTheNextCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	v, info := f.exported(t, "vol-dies")
	if _, err := qemuio.Run(ctx, image(info), "write -P 0x77 0 4k"); err != nil {
		t.Fatal(err)
	}
	pid := f.onePID(t)
	kill(t, f.cfg.StateDir, pid)

	info2, err := f.b.InitializeConnection(ctx, v, connector)
	if err != nil {
		t.Fatal(err)
	}
	if e := f.waitEvent(t); e.Kind != nbd.ExportRestarted || e.VolumeID != v.ID || strconv.Itoa(e.Port) != info.Data[volume.DataPort] {
		t.Fatalf("event %+v, want restarted on port %s", e, info.Data[volume.DataPort])
	}
	if info2.String() != info.String() {
		t.Fatalf("restarted export: %s, want the same port: %s", info2, info)
	}
	if got := f.onePID(t); got == pid {
		t.Fatalf("qemu-nbd %d not replaced", pid)
	}
	if _, err := qemuio.Run(ctx, image(info2), "read -P 0x77 0 4k"); err != nil {
		t.Fatalf("data written before the crash: %v", err)
	}
}

func TestSupervisorRestartsADeadExport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, func(c *nbd.Config) { c.SuperviseInterval = 20 * time.Millisecond })
	v, info := f.exported(t, "vol-supervised")
	kill(t, f.cfg.StateDir, f.onePID(t))
	e := f.waitEvent(t)
	if e.Kind != nbd.ExportRestarted || e.VolumeID != v.ID {
		t.Fatalf("event %+v, want restarted", e)
	}
	if err := qemuio.WriteRead(ctx, image(info), 0x99, 0, 4096); err != nil {
		t.Fatal(err)
	}
}

func TestRestartTakesANewPortWhenTheOldOneIsTaken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	v, info := f.exported(t, "vol-port")
	kill(t, f.cfg.StateDir, f.onePID(t))
	squatter, err := net.Listen("tcp", addr(info))
	if err != nil {
		t.Fatalf("occupy the dead export's port: %v", err)
	}
	defer squatter.Close()

	info2, err := f.b.InitializeConnection(ctx, v, connector)
	if err != nil {
		t.Fatal(err)
	}
	if info2.Data[volume.DataPort] == info.Data[volume.DataPort] {
		t.Fatalf("restarted on the taken port %s", info.Data[volume.DataPort])
	}
	if e := f.waitEvent(t); e.Kind != nbd.ExportRestarted || strconv.Itoa(e.Port) != info2.Data[volume.DataPort] {
		t.Fatalf("event %+v, want restarted on port %s", e, info2.Data[volume.DataPort])
	}
	if err := qemuio.WriteRead(ctx, image(info2), 0x5e, 0, 4096); err != nil {
		t.Fatal(err)
	}
}

func TestFailedRestartIsReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	v, _ := f.exported(t, "vol-lost")
	kill(t, f.cfg.StateDir, f.onePID(t))
	path, _ := f.b.Path(v.ID)
	if err := os.Remove(path); err != nil { // the storage under the export is gone
		t.Fatal(err)
	}
	if _, err := f.b.InitializeConnection(ctx, v, connector); !errors.Is(err, nbd.ErrExportDied) {
		t.Fatalf("InitializeConnection = %v, want ErrExportDied", err)
	}
	if e := f.waitEvent(t); e.Kind != nbd.ExportFailed || !errors.Is(e.Err, nbd.ErrExportDied) {
		t.Fatalf("event %+v, want failed", e)
	}
	if err := f.b.CheckExports(ctx); !errors.Is(err, nbd.ErrExportDied) {
		t.Fatalf("CheckExports = %v, want ErrExportDied", err)
	}
	if err := f.b.RemoveExport(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := f.b.CheckExports(ctx); err != nil {
		t.Fatalf("CheckExports after RemoveExport = %v, want nil", err)
	}
}

func TestConcurrentCreateExportStartsOneServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	b2 := f.newBackend(t) // another process on the same state
	v := volume.Volume{ID: "vol-race", SizeBytes: mib}
	if err := f.b.CreateVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		b := []*nbd.Backend{f.b, b2}[i%2]
		wg.Go(func() { errs[i] = b.CreateExport(ctx, v, connector) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("CreateExport %d: %v", i, err)
		}
	}
	f.onePID(t)
	if err := f.b.DeleteVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
}

func TestCloseStopsOnlyWhatItStarted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil) // StopOnClose
	a, infoA := f.exported(t, "vol-a")
	b2 := f.newBackend(t)
	if err := b2.CreateExport(ctx, a, connector); err != nil { // finds a running
		t.Fatal(err)
	}
	vb := volume.Volume{ID: "vol-b", SizeBytes: mib}
	if err := b2.CreateVolume(ctx, vb); err != nil {
		t.Fatal(err)
	}
	if err := b2.CreateExport(ctx, vb, connector); err != nil {
		t.Fatal(err)
	}
	infoB, err := b2.InitializeConnection(ctx, vb, connector)
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	portClosed(t, addr(infoB))
	if _, err := qemuio.Run(ctx, image(infoA), "read 0 512"); err != nil {
		t.Fatalf("export a, not started by the closed backend, stopped: %v", err)
	}
	if err := f.b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	portClosed(t, addr(infoA))
}

func TestPortRange(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	f := newFixture(t, func(c *nbd.Config) { c.PortMin, c.PortMax = port, port })
	ctx := context.Background()
	v, info := f.exported(t, "vol-range")
	if info.Data[volume.DataPort] != strconv.Itoa(port) {
		t.Fatalf("port %s, want %d (the only one in range)", info.Data[volume.DataPort], port)
	}
	v2 := volume.Volume{ID: "vol-range-2", SizeBytes: mib}
	if err := f.b.CreateVolume(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if err := f.b.CreateExport(ctx, v2, connector); !errors.Is(err, nbd.ErrNoFreePort) {
		t.Fatalf("CreateExport with the range used up = %v, want ErrNoFreePort", err)
	}
	if pids := nbd.ServerPIDs(f.cfg.StateDir); len(pids) != 1 {
		t.Fatalf("qemu-nbd processes %v, want only the first export's", pids)
	}
	if _, err := os.Stat(filepath.Join(f.cfg.StateDir, v2.ID+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused export left its record: %v", err)
	}
	if err := f.b.DeleteVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
}

func TestBadInputIsRefusedAndLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	b := f.b
	for _, id := range []string{"", "../escape", "a/b", ".."} {
		v := volume.Volume{ID: id, SizeBytes: mib}
		_, initErr := b.InitializeConnection(ctx, v, connector)
		errs := map[string]error{
			"CreateVolume":         b.CreateVolume(ctx, v),
			"CreateExport":         b.CreateExport(ctx, v, connector),
			"InitializeConnection": initErr,
			"TerminateConnection":  b.TerminateConnection(ctx, v, connector),
			"RemoveExport":         b.RemoveExport(ctx, v),
			"DeleteVolume":         b.DeleteVolume(ctx, v),
		}
		for op, err := range errs {
			if !errors.Is(err, storage.ErrInvalidVolumeID) {
				t.Errorf("%s(id %q) = %v, want ErrInvalidVolumeID", op, id, err)
			}
		}
	}
	bad := volume.Volume{ID: "vol-fmt", SizeBytes: mib, Format: "vmdk"}
	if err := b.CreateVolume(ctx, bad); !errors.Is(err, storage.ErrUnknownFormat) {
		t.Errorf("CreateVolume(vmdk) = %v, want ErrUnknownFormat", err)
	}
	if err := b.CreateExport(ctx, bad, connector); !errors.Is(err, storage.ErrUnknownFormat) {
		t.Errorf("CreateExport(vmdk) = %v, want ErrUnknownFormat", err)
	}
	v := volume.Volume{ID: "vol-ok", SizeBytes: mib}
	if err := b.CreateExport(ctx, v, connector); !errors.Is(err, storage.ErrExportFailure) || !errors.Is(err, storage.ErrVolumeNotFound) {
		t.Errorf("CreateExport without a volume = %v, want ErrExportFailure and ErrVolumeNotFound", err)
	}
	if err := b.CreateVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	if _, err := b.InitializeConnection(ctx, v, connector); !errors.Is(err, storage.ErrExportNotFound) {
		t.Errorf("InitializeConnection before CreateExport = %v, want ErrExportNotFound", err)
	}
	for _, c := range []volume.Connector{{}, {Host: "compute-1"}, {IP: "not-an-ip"}} {
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
	if pids := nbd.ServerPIDs(f.cfg.StateDir); len(pids) != 0 {
		t.Errorf("refused calls started qemu-nbd %v", pids)
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
	for _, cfg := range []nbd.Config{
		{Dir: dir},
		{StateDir: dir},
		{Dir: dir, StateDir: dir, Host: "localhost"},
		{Dir: dir, StateDir: dir, Host: "192.0.2.1"},
		{Dir: dir, StateDir: dir, PortMin: 20000},
		{Dir: dir, StateDir: dir, PortMin: 20010, PortMax: 20000},
		{Dir: dir, StateDir: dir, DefaultFormat: "vmdk"},
		{Dir: dir, StateDir: dir, MaxClients: -1},
	} {
		if _, err := nbd.New(cfg); !errors.Is(err, storage.ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
	b, err := nbd.New(nbd.Config{Dir: dir, StateDir: dir, Host: "192.0.2.1", AllowRemote: true})
	if err != nil {
		t.Fatalf("New with AllowRemote: %v", err)
	}
	b.Close(context.Background())
}
