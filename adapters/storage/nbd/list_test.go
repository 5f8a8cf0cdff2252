package nbd_test

import (
	"context"
	"slices"
	"testing"
)

func TestListExportsFollowsCreateAndRemove(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	if got, err := f.b.ListExports(ctx); err != nil || len(got) != 0 {
		t.Fatalf("fresh backend: ListExports = %v, %v; want none", got, err)
	}
	b, _ := f.exported(t, "vol-b")
	a, _ := f.exported(t, "vol-a")
	if got, err := f.b.ListExports(ctx); err != nil || !slices.Equal(got, []string{"vol-a", "vol-b"}) {
		t.Fatalf("ListExports = %v, %v; want [vol-a vol-b]", got, err)
	}
	if err := f.b.RemoveExport(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, err := f.b.ListExports(ctx); err != nil || !slices.Equal(got, []string{"vol-b"}) {
		t.Fatalf("after RemoveExport: ListExports = %v, %v; want [vol-b]", got, err)
	}
	if err := f.b.RemoveExport(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got, err := f.b.ListExports(ctx); err != nil || len(got) != 0 {
		t.Fatalf("after removing both: ListExports = %v, %v; want none", got, err)
	}
}

func TestListExportsHonoursContext(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.b.ListExports(ctx); err == nil {
		t.Fatal("ListExports on a cancelled context succeeded")
	}
}
