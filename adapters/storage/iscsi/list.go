package iscsi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/volume"
)

var _ volume.ExportLister = (*Backend)(nil)

// ListExports returns the ids of the volumes whose target tgtd has under
// this backend's IQN prefix and whose CHAP secret this backend keeps in its
// state directory, sorted (volume.ExportLister): the exports this backend
// made. CreateExport stores the secret before it creates the target and
// RemoveExport removes it last, so every target this backend made is
// listed. Targets of other prefixes, and targets of another backend (or
// another deployment, with its own store) that shares tgtd and the prefix
// but not the state directory, are not this backend's: a reconciler that
// knows no volume of theirs must not remove them.
func (b *Backend) ListExports(ctx context.Context) ([]string, error) {
	unlock, err := b.lock()
	if err != nil {
		return nil, err
	}
	all, err := b.tgt.targets(ctx)
	unlock()
	if err != nil {
		return nil, fmt.Errorf("iscsi: listing targets: %w", err)
	}
	var ids []string
	for _, t := range all {
		id, ok := strings.CutPrefix(t.IQN, b.prefix)
		if !ok || storage.ValidateVolumeID(id) != nil {
			continue
		}
		switch _, err := os.Stat(b.secretPath(id)); {
		case err == nil:
			ids = append(ids, id)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("iscsi: listing targets: %w", err)
		}
	}
	slices.Sort(ids)
	return ids, nil
}
