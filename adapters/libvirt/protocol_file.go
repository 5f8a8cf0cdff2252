package libvirt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"libvirt.org/go/libvirtxml"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// fileDriver attaches a volume file (qcow2 or raw) as a file disk. QEMU
// opens the file itself; libvirt's dynamic ownership gives it to QEMU's user
// for the attachment, but every directory above the file must be
// searchable by that user.
type fileDriver struct {
	noConnect
	a *Adapter
}

// fileFormats are the image formats a file volume may have.
var fileFormats = map[string]bool{"raw": true, "qcow2": true}

// Disk renders the file disk; the image format comes from the
// connection (raw when it names none).
func (f fileDriver) Disk(info volume.ConnectionInfo, disk compute.DiskInfo) (*libvirtxml.DomainDisk, error) {
	path, err := field(info, volume.DataPath)
	if err != nil {
		return nil, err
	}
	if !filepath.IsAbs(path) {
		return nil, badField(info.DriverVolumeType, volume.DataPath, "not an absolute path")
	}
	format := info.Data[volume.DataFormat]
	if format == "" {
		format = "raw"
	}
	if !fileFormats[format] {
		return nil, badField(info.DriverVolumeType, volume.DataFormat, fmt.Sprintf("%q is neither raw nor qcow2", format))
	}
	d, err := f.a.baseDisk(info, disk)
	if err != nil {
		return nil, err
	}
	d.Driver.Type = format
	d.Source = &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: filepath.Clean(path)}}
	return d, nil
}

// Connect checks that the volume file is there, so a missing file fails
// before libvirt is asked.
func (f fileDriver) Connect(ctx context.Context, info volume.ConnectionInfo, disk compute.DiskInfo) error {
	path, err := field(info, volume.DataPath)
	if err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("libvirt: file volume: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("libvirt: file volume: %s is not a regular file", path)
	}
	return nil
}
