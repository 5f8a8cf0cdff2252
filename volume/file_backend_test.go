package volume_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/volume"
)

// fileEnv is a Service over the embedded etcd and the real file backend.
func fileEnv(t testing.TB) (*env, *file.Backend) {
	t.Helper()
	testenv.NeedCommand(t, "qemu-img")
	fb, err := file.New(file.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("file backend: %v", err)
	}
	return newEnv(t, fb, nil), fb
}

// TestFileBackendLifecycle runs the legacy cycle and the attachments API
// cycle against real qcow2 files: the connection_info names the volume's
// file, and deleting the volume removes it.
func TestFileBackendLifecycle(t *testing.T) {
	e, fb := fileEnv(t)
	ctx := ctxFor(t)
	v := e.create(volume.VolumeSpec{SizeBytes: 4 << 20, Format: file.FormatQCOW2})
	path, err := fb.Path(v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("volume file: %v", err)
	}

	// Legacy: reserve, initialize_connection, attach, begin_detaching,
	// terminate_connection, detach.
	if err := e.svc.Reserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	info, err := e.svc.InitializeConnection(ctx, v.ID, hostConnector)
	if err != nil {
		t.Fatal(err)
	}
	if info.DriverVolumeType != volume.DriverFile || info.Data[volume.DataPath] != path || info.AccessMode() != volume.ModeRW {
		t.Fatalf("connection_info %s", info)
	}
	a, err := e.svc.Attach(ctx, v.ID, instA, "compute-1", "/dev/vdb", volume.ModeRW)
	if err != nil {
		t.Fatal(err)
	}
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)
	if err := e.svc.BeginDetaching(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.TerminateConnection(ctx, v.ID, hostConnector); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Detach(ctx, v.ID, a.ID); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(v.ID, volume.StatusAvailable, volume.AttachDetached)

	// Attachments API: create with connector, complete, delete.
	att, err := e.svc.AttachmentCreate(ctx, v.ID, instB, &hostConnector, volume.ModeRO)
	if err != nil {
		t.Fatal(err)
	}
	if att.ConnectionInfo == nil || att.ConnectionInfo.Data[volume.DataPath] != path || att.ConnectionInfo.AccessMode() != volume.ModeRO {
		t.Fatalf("attachment connection_info %v", att.ConnectionInfo)
	}
	if err := e.svc.AttachmentComplete(ctx, att.ID); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)
	if err := e.svc.AttachmentDelete(ctx, att.ID); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(v.ID, volume.StatusAvailable, volume.AttachDetached)

	if err := e.svc.DeleteVolume(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("volume file after delete: %v", err)
	}
	if _, err := e.svc.GetVolume(ctx, v.ID); !errors.Is(err, volume.ErrVolumeNotFound) {
		t.Fatalf("volume record after delete: %v", err)
	}
	var events []string
	for _, tr := range e.history(v.Key()) {
		events = append(events, tr.From+">"+tr.To)
	}
	// One line per action: no X>X line followed by a recompute, and the
	// delete ends in the removed pseudo-status.
	want := []string{">creating", "creating>available", "available>attaching", "attaching>in-use", "in-use>detaching",
		"detaching>available", "available>reserved", "reserved>attaching", "attaching>in-use", "in-use>available",
		"available>deleting", "deleting>deleted"}
	if !slices.Equal(events, want) {
		t.Fatalf("history %v, want %v", events, want)
	}
	e.checkHistory()
}

// TestNotifications checks the upstream notifications around an attach and
// a detach, in order.
func TestNotifications(t *testing.T) {
	e := newFakeEnv(t)
	ctx := ctxFor(t)
	v, a := e.attached(volume.VolumeSpec{}, instA)
	if err := e.svc.Detach(ctx, v.ID, a.ID); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(e.notes.names())
	want := fmt.Sprint([]string{volume.NotifyCreateStart, volume.NotifyCreateEnd, volume.NotifyAttachStart, volume.NotifyAttachEnd, volume.NotifyDetachStart, volume.NotifyDetachEnd})
	if got != want {
		t.Fatalf("notifications %s, want %s", got, want)
	}
	for _, n := range e.notes.events {
		if n.Publisher != "volume" || n.Payload["volume_id"] != v.ID {
			t.Fatalf("notification %+v", n)
		}
	}
}

// BenchmarkAttachCycle measures one legacy cycle (reserve,
// initialize_connection, attach, detach, terminate_connection) on the file
// backend over the embedded etcd, with 1 and 32 volumes cycling at once. It
// reports cycles per second, store commits (etcd write transactions) per
// cycle, volume-lock acquisitions per cycle (each one lock write, and one
// unlock write unless the section's last commit released it), and the etcd
// writes per cycle (revisions: commits and lock keys together).
func BenchmarkAttachCycle(b *testing.B) {
	for _, n := range []int{1, 32} {
		b.Run(fmt.Sprintf("volumes=%d", n), func(b *testing.B) {
			e, _ := fileEnv(b)
			ctx := context.Background()
			vols := make([]string, n)
			for i := range vols {
				vols[i] = e.create(volume.VolumeSpec{SizeBytes: 1 << 20}).ID
			}
			commits0, locks0, rev0 := e.counted.commits.Load(), e.locker.locks.Load(), e.revision()
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, n)
			b.ReportAllocs()
			b.ResetTimer()
			for _, id := range vols {
				wg.Add(1)
				go func() {
					defer wg.Done()
					inst := volume.NewUUID()
					for next.Add(1) <= int64(b.N) {
						if err := cycle(ctx, e.svc, id, inst); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
			b.ReportMetric(float64(e.counted.commits.Load()-commits0)/float64(b.N), "commits/cycle")
			b.ReportMetric(float64(e.locker.locks.Load()-locks0)/float64(b.N), "locks/cycle")
			b.ReportMetric(float64(e.revision()-rev0)/float64(b.N), "etcd-writes/cycle")
		})
	}
}

func cycle(ctx context.Context, svc *volume.Service, id, inst string) error {
	if err := svc.Reserve(ctx, id); err != nil {
		return fmt.Errorf("reserve: %w", err)
	}
	if _, err := svc.InitializeConnection(ctx, id, hostConnector); err != nil {
		return fmt.Errorf("initialize_connection: %w", err)
	}
	a, err := svc.Attach(ctx, id, inst, "compute-1", "/dev/vdb", volume.ModeRW)
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	if err := svc.Detach(ctx, id, a.ID); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	if err := svc.TerminateConnection(ctx, id, hostConnector); err != nil {
		return fmt.Errorf("terminate_connection: %w", err)
	}
	return nil
}

// TestFileBackendRefusesConnectorWithoutAddress: a connector with neither an
// initiator nor an IP is the caller's fault (InvalidInput, 400), checked by
// the backend before anything is exported, and nothing is persisted.
func TestFileBackendRefusesConnectorWithoutAddress(t *testing.T) {
	e, _ := fileEnv(t)
	ctx := ctxFor(t)
	v := e.create(volume.VolumeSpec{SizeBytes: 1 << 20, Format: file.FormatRaw})
	before := e.revision()
	_, err := e.svc.AttachmentCreate(ctx, v.ID, instA, &volume.Connector{Host: "compute-1"}, volume.ModeRW)
	if !errors.Is(err, volume.ErrInvalidInput) || volume.HTTPStatus(err) != 400 {
		t.Fatalf("AttachmentCreate with an address-less connector: %v (status %d), want InvalidInput 400", err, volume.HTTPStatus(err))
	}
	if after := e.revision(); after != before {
		t.Fatalf("etcd revision moved from %d to %d on a refused request", before, after)
	}
}
