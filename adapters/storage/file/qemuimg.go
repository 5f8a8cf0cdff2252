package file

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/volattach/volattach/adapters/storage/internal/command"
)

// qemuImg drives the qemu-img program.
type qemuImg struct {
	prog string
	run  command.Runner
}

// imageInfo is the part of `qemu-img info --output=json` we check.
type imageInfo struct {
	VirtualSize int64  `json:"virtual-size"`
	Format      string `json:"format"`
}

// create makes a new image of the given format and size at path.
func (q *qemuImg) create(ctx context.Context, path, format string, size int64) error {
	_, err := q.run.Run(ctx, command.Cmd{
		Name: q.prog,
		Args: []string{"create", "-q", "-f", format, path, strconv.FormatInt(size, 10)},
	})
	return err
}

// info reads path as an image of the given format. The format is always
// given, never probed: a guest could write a qcow2 header into a raw volume
// and make a probe treat it as qcow2 with a backing file on the host. -U
// (force share) lets it read an image a qemu-nbd or QEMU holds open.
func (q *qemuImg) info(ctx context.Context, path, format string) (imageInfo, error) {
	out, err := q.run.Run(ctx, command.Cmd{
		Name: q.prog,
		Args: []string{"info", "--output=json", "-U", "-f", format, path},
	})
	if err != nil {
		return imageInfo{}, err
	}
	var info imageInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return imageInfo{}, fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	return info, nil
}
