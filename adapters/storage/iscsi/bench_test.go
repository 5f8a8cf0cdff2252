package iscsi_test

import (
	"context"
	"testing"

	"github.com/volattach/volattach/adapters/storage/internal/qemuio"
	"github.com/volattach/volattach/adapters/storage/iscsi"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/volume"
)

// BenchmarkAttachCycle measures one create + export + connect + qemu-io
// write and read back through tgtd with CHAP + terminate + remove + delete
// cycle.
func BenchmarkAttachCycle(b *testing.B) {
	testenv.NeedCommand(b, "tgtadm", "qemu-img", "qemu-io")
	be, err := iscsi.New(iscsi.Config{Dir: b.TempDir(), StateDir: b.TempDir(), IQNPrefix: "iqn.2026-11.io.volattach.bench-" + randHex(6) + ":"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v := volume.Volume{ID: newID(), SizeBytes: 4 << 20}
		if err := be.CreateVolume(ctx, v); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { be.DeleteVolume(context.Background(), v) })
		if err := be.CreateExport(ctx, v, byName); err != nil {
			b.Fatal(err)
		}
		info, err := be.InitializeConnection(ctx, v, byName)
		if err != nil {
			b.Fatal(err)
		}
		if err := qemuio.WriteRead(ctx, imageOpts(info, byName.Initiator, info.Data[volume.DataAuthPassword]), 0xab, 0, 64<<10); err != nil {
			b.Fatal(err)
		}
		if err := be.TerminateConnection(ctx, v, byName); err != nil {
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
// + remove export (tgtadm runs only) on an existing volume.
func BenchmarkConnectionCalls(b *testing.B) {
	testenv.NeedCommand(b, "tgtadm", "qemu-img")
	be, err := iscsi.New(iscsi.Config{Dir: b.TempDir(), StateDir: b.TempDir(), IQNPrefix: "iqn.2026-11.io.volattach.bench-" + randHex(6) + ":"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	v := volume.Volume{ID: newID(), SizeBytes: 1 << 20}
	if err := be.CreateVolume(ctx, v); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.DeleteVolume(context.Background(), v) })
	b.ReportAllocs()
	for b.Loop() {
		if err := be.CreateExport(ctx, v, byName); err != nil {
			b.Fatal(err)
		}
		if _, err := be.InitializeConnection(ctx, v, byName); err != nil {
			b.Fatal(err)
		}
		if err := be.TerminateConnection(ctx, v, byName); err != nil {
			b.Fatal(err)
		}
		if err := be.RemoveExport(ctx, v); err != nil {
			b.Fatal(err)
		}
	}
}
