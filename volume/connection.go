package volume

import (
	"fmt"
	"sort"
	"strings"
)

// Connector describes the host that will use a volume (upstream: os-brick's
// connector properties, passed to initialize_connection).
type Connector struct {
	// Host is the host name of the hypervisor host.
	Host string `json:"host"`
	// IP is the host's address the storage target should accept.
	IP string `json:"ip,omitempty"`
	// Initiator is the host's iSCSI initiator IQN.
	Initiator string `json:"initiator,omitempty"`
	// Multipath tells whether the host wants multipath connections.
	Multipath bool `json:"multipath"`
	// Platform is the host's machine architecture, for example "x86_64".
	Platform string `json:"platform,omitempty"`
	// OSType is the host's OS, for example "linux2".
	OSType string `json:"os_type,omitempty"`
	// Mode is the attach mode the caller asks for ("rw" or "ro"), as the
	// attachments API carries it inside the connector.
	Mode string `json:"mode,omitempty"`
	// Mountpoint is the device the host will use, as the attachments API
	// carries it inside the connector (upstream default "na").
	Mountpoint string `json:"mountpoint,omitempty"`
}

// DriverVolumeType values: the protocol a ConnectionInfo speaks. They select
// the hypervisor's protocol driver (upstream nova/virt/libvirt/volume).
const (
	DriverFile  = "file"
	DriverISCSI = "iscsi"
	DriverNBD   = "nbd"
	DriverRBD   = "rbd"
)

// Well-known keys of ConnectionInfo.Data, named as upstream names them.
const (
	DataPath         = "device_path"   // file: path of the volume file
	DataFormat       = "format"        // file: qcow2 or raw
	DataTargetIQN    = "target_iqn"    // iscsi
	DataTargetPortal = "target_portal" // iscsi: host:port
	DataTargetLUN    = "target_lun"    // iscsi
	DataAuthMethod   = "auth_method"   // iscsi: "CHAP" or absent
	DataAuthUsername = "auth_username"
	DataAuthPassword = "auth_password" // secret: never logged
	DataHost         = "host"          // nbd, rbd
	DataPort         = "port"          // nbd, rbd
	DataExportName   = "name"          // nbd export name, rbd pool/image
	DataAccessMode   = "access_mode"   // "rw" or "ro"
	DataVolumeID     = "volume_id"
	DataSecretUUID   = "secret_uuid" // rbd: libvirt secret holding the key
	DataAuthUser     = "auth_username_rbd"
)

// ConnectionInfo is what initialize_connection returns: the protocol and the
// data a host needs to reach the volume. Serial is the volume id (set by the
// compute side when absent, as upstream does).
type ConnectionInfo struct {
	DriverVolumeType string            `json:"driver_volume_type"`
	Data             map[string]string `json:"data"`
	Serial           string            `json:"serial,omitempty"`
	// Multiattach is set by the compute side when the volume may be
	// attached to several instances (upstream _volume_attach:
	// connection_info['multiattach'] = True): the disk is shared.
	Multiattach bool `json:"multiattach,omitempty"`
}

// secretKeys are Data keys whose values are credentials.
var secretKeys = map[string]bool{DataAuthPassword: true}

// String renders the connection info with credentials masked, so it is safe
// to log.
func (c ConnectionInfo) String() string {
	keys := make([]string, 0, len(c.Data))
	for k := range c.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%s{", c.DriverVolumeType)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		v := c.Data[k]
		if secretKeys[k] {
			v = "***"
		}
		fmt.Fprintf(&b, "%s=%s", k, v)
	}
	b.WriteString("}")
	return b.String()
}

// AccessMode returns the mode connection_info asks for: "rw" unless its data
// says otherwise (upstream DriverVolumeBlockDevice.attach).
func (c ConnectionInfo) AccessMode() string {
	if m := c.Data[DataAccessMode]; m != "" {
		return m
	}
	return "rw"
}
