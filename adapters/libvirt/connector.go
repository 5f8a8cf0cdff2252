package libvirt

import (
	"context"
	"runtime"

	"github.com/volattach/volattach/volume"
)

// osType is the connector's os_type for a Linux host (os-brick's value).
const osType = "linux2"

// VolumeConnector returns this host's connector (upstream
// get_volume_connector): host name, IP, iSCSI initiator name, no multipath,
// the machine architecture and os_type. It makes no call to libvirtd.
func (a *Adapter) VolumeConnector(ctx context.Context) (volume.Connector, error) {
	if err := ctx.Err(); err != nil {
		return volume.Connector{}, err
	}
	return volume.Connector{
		Host:      a.host,
		IP:        a.cfg.ip,
		Initiator: a.initiator,
		Multipath: false,
		Platform:  platform(runtime.GOARCH),
		OSType:    osType,
	}, nil
}

// platform names a Go architecture the way the kernel (uname -m) does.
func platform(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "386":
		return "i686"
	case "arm64":
		return "aarch64"
	case "arm":
		return "armv7l"
	default:
		// ppc64le, s390x, riscv64, mips64... are spelled the same.
		return goarch
	}
}
