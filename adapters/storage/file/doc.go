// Package file is the simplest volume backend: each volume is a qcow2 or raw
// file made with qemu-img in one directory, named by the volume id, and the
// "export" is the file itself, reached by its path on the local host
// (connection_info driver_volume_type "file"). Create/remove export and
// initialize/terminate connection only validate their input.
//
// The iscsi and nbd backends reuse it for their backing files.
package file
