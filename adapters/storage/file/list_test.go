package file_test

import (
	"context"
	"testing"

	"github.com/volattach/volattach/volume"
)

func TestListExportsIsEmptyEvenWithExportedVolumes(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, "")
	v := volume.Volume{ID: "vol-1", SizeBytes: mib}
	if err := b.CreateVolume(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateExport(ctx, v, connector); err != nil {
		t.Fatal(err)
	}
	if got, err := b.ListExports(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ListExports = %v, %v; a file has no export", got, err)
	}
}
