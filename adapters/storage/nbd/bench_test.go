package nbd_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/volattach/volattach/adapters/storage/internal/qemuio"
	"github.com/volattach/volattach/adapters/storage/nbd"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/volume"
)

func newBenchBackend(b *testing.B) *nbd.Backend {
	testenv.NeedCommand(b, "qemu-nbd", "qemu-img", "qemu-io")
	cfg := nbd.Config{Dir: b.TempDir(), StateDir: b.TempDir(), StopOnClose: true}
	stateDirs.Store(cfg.StateDir, true)
	be, err := nbd.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close(context.Background()) })
	return be
}

// BenchmarkAttachCycle measures one create + export (qemu-nbd start) +
// connect + qemu-io write and read back + terminate + remove (qemu-nbd
// stop) + delete cycle.
func BenchmarkAttachCycle(b *testing.B) {
	be := newBenchBackend(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		v := volume.Volume{ID: fmt.Sprintf("vol-%d", i), SizeBytes: 4 << 20}
		if err := be.CreateVolume(ctx, v); err != nil {
			b.Fatal(err)
		}
		if err := be.CreateExport(ctx, v, connector); err != nil {
			b.Fatal(err)
		}
		info, err := be.InitializeConnection(ctx, v, connector)
		if err != nil {
			b.Fatal(err)
		}
		if err := qemuio.WriteRead(ctx, image(info), 0xab, 0, 64<<10); err != nil {
			b.Fatal(err)
		}
		if err := be.TerminateConnection(ctx, v, connector); err != nil {
			b.Fatal(err)
		}
		if err := be.RemoveExport(ctx, v); err != nil {
			b.Fatal(err)
		}
		if err := be.DeleteVolume(ctx, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnectionCalls measures create export + initialize + terminate
// + remove export (one qemu-nbd start and stop) on an existing volume.
func BenchmarkConnectionCalls(b *testing.B) {
	be := newBenchBackend(b)
	ctx := context.Background()
	v := volume.Volume{ID: "vol-bench", SizeBytes: 1 << 20}
	if err := be.CreateVolume(ctx, v); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := be.CreateExport(ctx, v, connector); err != nil {
			b.Fatal(err)
		}
		if _, err := be.InitializeConnection(ctx, v, connector); err != nil {
			b.Fatal(err)
		}
		if err := be.TerminateConnection(ctx, v, connector); err != nil {
			b.Fatal(err)
		}
		if err := be.RemoveExport(ctx, v); err != nil {
			b.Fatal(err)
		}
	}
}
