package volume

// Keys of ConnectionInfo.Data for the rbd and nfs protocols, named as
// upstream's Cinder drivers name them. Lists (rbd's monitors) are
// comma-separated, since Data holds strings.
const (
	// DriverNFS is the driver_volume_type of a volume file on an NFS export.
	DriverNFS = "nfs"

	DataHosts       = "hosts"        // rbd: monitor addresses, comma-separated
	DataPorts       = "ports"        // rbd: monitor ports, one or one per host
	DataAuthEnabled = "auth_enabled" // rbd: "true" when cephx is used
	DataSecretType  = "secret_type"  // rbd: "ceph"
	DataClusterName = "cluster_name" // rbd: usually "ceph"
	DataExport      = "export"       // nfs: "host:/path" of the share
	DataOptions     = "options"      // nfs: mount options (upstream: for the host's mount)
)
