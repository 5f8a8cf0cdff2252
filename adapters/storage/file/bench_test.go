package file_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/internal/qemuio"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/volume"
)

// BenchmarkAttachCycle measures one create + export + connect + qemu-io
// write and read back + terminate + remove + delete cycle; qemu-io (two
// runs) dominates.
func BenchmarkAttachCycle(b *testing.B) {
	testenv.NeedCommand(b, "qemu-img", "qemu-io")
	be, err := file.New(file.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
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
		if err := qemuio.WriteRead(ctx, qemuio.Image{"-f", info.Data[volume.DataFormat], info.Data[volume.DataPath]}, 0xab, 0, 64<<10); err != nil {
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

// BenchmarkConnectionCalls measures the backend's own cost of create
// export + initialize + terminate + remove export on an existing volume,
// the part of an attach cycle the volume service pays every time.
func BenchmarkConnectionCalls(b *testing.B) {
	testenv.NeedCommand(b, "qemu-img")
	be, err := file.New(file.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
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
