// Package nfs keeps volumes as files in a directory an NFS server exports
// (nfs-ganesha here, any NFSv3 server in general), reached by QEMU's own
// NFS client (libnfs): connection_info driver_volume_type "nfs" with
// upstream's fields (export "host:/path", name the file, format, options),
// and the hypervisor attaches a network disk with protocol nfs. Nothing is
// mounted on the host.
//
// Where it differs from upstream. Cinder's NFS driver mounts the share on
// the volume host and writes the files through the mount, and Nova's NFS
// volume driver mounts it again on every compute host and attaches the file
// under the mount point. Here the backend runs beside the server and
// writes the files in the exported directory itself (with the file
// backend), and QEMU reaches them over NFS with no kernel mount: no mount
// point to leak or to clean up after a crash, no root-owned mount on the
// hypervisor host. The options field is passed on as upstream passes its
// mount options, but QEMU's client has no use for mount options.
//
// Files are mode 0660, owned by root and by the group QEMU runs as
// (Config.QemuGroup), as upstream's nas_secure_file_permissions makes them
// 0660: libnfs identifies itself with QEMU's uid and gid.
//
// Before a connection is handed out, the volume is opened through the
// export with qemu-img (QEMU's NFS client again), so an export the server
// does not serve, or a directory that is not the one it exports, fails
// with ErrExportNotFound before any host is told about it.
package nfs
