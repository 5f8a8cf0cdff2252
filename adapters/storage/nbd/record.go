package nbd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/volattach/volattach/adapters/storage/internal/statefile"
)

// record is the export that should run for a volume, kept in the state
// directory as <volume id>.json.
type record struct {
	VolumeID string `json:"volume_id"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Name     string `json:"name"`
	File     string `json:"file"`
	Format   string `json:"format"`
}

const recordSuffix = ".json"

// recordPath is the record's file.
func (b *Backend) recordPath(id string) string { return filepath.Join(b.state, id+recordSuffix) }

// pidPath is the pid file qemu-nbd writes for the export.
func (b *Backend) pidPath(id string) string { return filepath.Join(b.state, id+".pid") }

// readRecord reads the volume's record; fs.ErrNotExist when there is none.
func (b *Backend) readRecord(id string) (record, error) {
	data, err := os.ReadFile(b.recordPath(id))
	if err != nil {
		return record{}, err
	}
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return record{}, fmt.Errorf("nbd: export record %s: %w", b.recordPath(id), err)
	}
	if r.VolumeID != id {
		return record{}, fmt.Errorf("nbd: export record %s names volume %q", b.recordPath(id), r.VolumeID)
	}
	return r, nil
}

// writeRecord stores r atomically.
func (b *Backend) writeRecord(r record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return statefile.Replace(b.recordPath(r.VolumeID), append(data, '\n'), 0o600)
}

// removeRecord removes the record; none is success.
func (b *Backend) removeRecord(id string) error { return statefile.Remove(b.recordPath(id)) }

// recordIDs lists the volumes that have a record.
func (b *Backend) recordIDs() ([]string, error) {
	entries, err := os.ReadDir(b.state)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), recordSuffix); ok && !strings.HasPrefix(id, ".") {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
