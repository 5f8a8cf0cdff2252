package fsm_test

import (
	"context"
	"testing"

	looplab "github.com/looplab/fsm"
)

// The benchmarks share one shape: the fixture's delete row, from available to
// deleted behind two guards (no_attachments, not_locked), on an 8-state,
// 12-row table. Run them with
//
//	go test ./fsm -run '^$' -bench . -benchmem -count 10 | benchstat -

// BenchmarkNext is the guarded permission check: row lookup and two guards.
func BenchmarkNext(b *testing.B) {
	d := &disk{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := diskTable.Next(available, deleteDisk, d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFire is a full transition: the guards, then a fresh looplab
// machine built from the state, executing the event.
func BenchmarkFire(b *testing.B) {
	b.Run("ctx=background", func(b *testing.B) { benchmarkFire(b, context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.Run("ctx=cancellable", func(b *testing.B) { benchmarkFire(b, ctx) })
}

func benchmarkFire(b *testing.B, ctx context.Context) {
	d := &disk{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := diskTable.Fire(ctx, available, deleteDisk, d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLooplabEvent is the baseline: a bare looplab machine with the same
// single row, built and fired, without guards or a table.
func BenchmarkLooplabEvent(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		m := looplab.NewFSM("available", looplab.Events{
			{Name: "delete", Src: []string{"available"}, Dst: "deleted"},
		}, nil)
		if err := m.Event(ctx, "delete"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPermitted lists the allowed events of a state (every event's
// guards evaluated).
func BenchmarkPermitted(b *testing.B) {
	d := &disk{}
	b.ReportAllocs()
	for b.Loop() {
		if len(diskTable.Permitted(available, d)) != 4 {
			b.Fatal("want 4 permitted events")
		}
	}
}

func TestNextAllocatesNothing(t *testing.T) {
	d := &disk{}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := diskTable.Next(available, deleteDisk, d); err != nil {
			t.Fatal(err)
		}
		if !diskTable.Can(inUse, refresh, d) {
			t.Fatal("refresh refused")
		}
	})
	if allocs != 0 {
		t.Errorf("an allowed Next and Can allocate %.1f times, want 0", allocs)
	}
}
