// Package iscsi exports volumes over iSCSI through tgtd, the user-space
// target upstream's LVM driver can use, driven with tgtadm.
//
// Each volume gets one target, named by a configurable IQN prefix plus the
// volume id, whose LUN 1 is the volume's raw file (made by the file
// backend). Access needs both an ACL entry, bound for the connector's
// initiator name (or its address) by InitializeConnection and unbound by
// TerminateConnection, and per-volume CHAP: an incoming account bound to the
// target, whose credentials InitializeConnection returns in connection_info.
//
// Where the CHAP secret lives: tgtd keeps targets and accounts in memory
// only and never shows a password back, so the backend keeps each volume's
// secret in a 0600 file in its state directory (mode 0700), written
// atomically when the export is first created and removed with the export.
// A backend restarted in a new process, or a tgtd restarted and re-exported,
// therefore returns the same credentials. A random secret per export was
// chosen over one derived with HMAC from a master key: nothing long-lived
// exposes every volume's secret if it leaks, a removed and re-created export
// gets fresh credentials, and there is no master key to provision. The
// account's user name is derived from the target IQN, so it needs no
// storage.
//
// The secret is never logged (log entries carry ConnectionInfo.String(),
// which masks it) and is on no command line: tgtadm takes a password only
// as an argument, readable by every local user in /proc/PID/cmdline while
// it runs (upstream's tgt-admin path has the same exposure), so the account
// is created by sending tgtd's management request over its socket, as
// tgtadm would (tgtd_ipc.go).
//
// ListExports names only the targets this backend made (under its IQN
// prefix, with a secret in its state directory): a reconciler removing the
// exports of volumes it does not know never touches another deployment's
// targets on a shared tgtd.
package iscsi
