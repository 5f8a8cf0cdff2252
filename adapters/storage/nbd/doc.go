// Package nbd exports volumes over NBD with one qemu-nbd process per volume,
// listening on a loopback port the backend allocates; the export name is the
// volume id (connection_info driver_volume_type "nbd": host, port, name).
//
// State. For each export the state directory holds a record (the port,
// file and format: the export that should run) and the pid file qemu-nbd
// writes. The record is written before qemu-nbd starts and removed before
// it is stopped, so it always tells what ought to run. A process is only
// taken for the export when /proc shows it is qemu-nbd serving that file,
// with that export name and port and this state directory's pid file; a pid
// reused by another program is never signalled.
//
// Lifetime. qemu-nbd daemonises (--fork): exports outlive the process that
// made them, because guests keep using them. A Backend made later on the
// same state directory finds them running. Close stops the supervisor and,
// only when Config.StopOnClose is set (tests, one-shot tools), removes the
// exports this Backend instance started; by default it leaves them running.
//
// Dead exports. Every CreateExport and InitializeConnection checks that the
// export's qemu-nbd is alive and restarts it, on the same port when that is
// still free, when it is not. With Config.SuperviseInterval set, a goroutine
// does the same for every export in the state directory (CheckExports does
// one round on demand). Restarts and failures are logged and reported to
// Config.OnEvent.
//
// qemu-nbd has no authentication, so the backend binds loopback addresses
// only unless Config.AllowRemote is set; TerminateConnection has nothing to
// revoke and only validates its input.
package nbd
