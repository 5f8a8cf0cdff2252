#!/usr/bin/env bash
# env-nfs.sh: install (when missing) and start the user-space NFS server the
# nfs backend's tests and demo use, as ../shared/ENV.md describes: rpcbind,
# then nfs-ganesha (FSAL VFS) serving one directory over NFSv3 and v4 on
# 127.0.0.1 only. QEMU reaches it with its own NFS client (libnfs); nothing
# is mounted on the host.
#   VOLATTACH_NFS_DIR (default /var/lib/volattach/nfs) holds ganesha.conf,
#   its log and pid file, and export/, the exported directory (its path is
#   also the export's path as clients name it).
# Idempotent: a server that answers is left alone.
set -euo pipefail

log() { printf 'env-nfs: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

D=${VOLATTACH_NFS_DIR:-/var/lib/volattach/nfs}
EXPORT=$D/export

. "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"
# netbase: /etc/services, where rpcbind and rpcinfo look up their port
# (a minimal Debian has none: rpcbind then binds nothing, and rpcinfo says
# "RPC: Unknown host"); procps: pgrep and pkill.
ensure_packages nfs-ganesha nfs-ganesha-vfs rpcbind netbase procps qemu-utils qemu-block-extra

# answers: QEMU's own NFS client reads a probe file through the export.
answers() {
	[ -f "$EXPORT/.probe" ] && timeout 20 qemu-img info -f raw "nfs://127.0.0.1$EXPORT/.probe" >/dev/null 2>&1
}

# ganesha's VFS FSAL finds the exported file system in /etc/mtab; a
# minimal root (a chroot, some containers) has none: the usual symlink.
[ -e /etc/mtab ] || $SUDO ln -s ../proc/self/mounts /etc/mtab
$SUDO mkdir -p "$EXPORT"
# QEMU (user libvirt-qemu) walks to the volume files; their own modes
# protect them.
$SUDO chmod 0755 "$D" "$EXPORT"
[ -f "$EXPORT/.probe" ] || $SUDO touch "$EXPORT/.probe"

if answers; then
	log "ready: $EXPORT served on 127.0.0.1"
	exit 0
fi

wait_for() { # wait_for DESCRIPTION COMMAND...: poll up to 60 s
	local what=$1; shift
	for _ in $(seq 1 300); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	log "$what did not come up (log: $D/ganesha.log)"
	return 1
}

if ! rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then
	# One that runs but does not answer (started before /etc/services
	# existed, say) holds its socket: it goes first.
	if pgrep -x rpcbind -r R,S,D,I >/dev/null 2>&1; then
		log "rpcbind runs but does not answer; restarting it"
		$SUDO pkill -x rpcbind || true
		for _ in $(seq 1 50); do pgrep -x rpcbind -r R,S,D,I >/dev/null 2>&1 || break; sleep 0.1; done
	fi
	log "starting rpcbind"
	$SUDO mkdir -p /run/rpcbind
	$SUDO rpcbind -w
	wait_for rpcbind rpcinfo -p 127.0.0.1
fi

$SUDO tee "$D/ganesha.conf" >/dev/null <<EOF
NFS_CORE_PARAM {
	Bind_addr = 127.0.0.1;
	Enable_UDP = false;
	Enable_NLM = false;
	Enable_RQUOTA = false;
	Protocols = 3, 4;
}
NFSV4 {
	Graceless = true;
}
EXPORT_DEFAULTS {
	Access_Type = None;
}
EXPORT {
	Export_Id = 77;
	Path = $EXPORT;
	Pseudo = $EXPORT;
	Protocols = 3, 4;
	Transports = TCP;
	Access_Type = RW;
	Squash = No_Root_Squash;
	SecType = sys;
	CLIENT {
		Clients = 127.0.0.0/8;
		Access_Type = RW;
	}
	FSAL {
		Name = VFS;
	}
}
EOF

pid=$(cat "$D/ganesha.pid" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
	log "ganesha.nfsd runs but does not answer; restarting it"
	$SUDO kill "$pid" || true
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
log "starting ganesha.nfsd"
$SUDO mkdir -p /var/run/ganesha /var/lib/nfs/ganesha
$SUDO ganesha.nfsd -f "$D/ganesha.conf" -L "$D/ganesha.log" -p "$D/ganesha.pid" -N NIV_EVENT
wait_for "ganesha.nfsd" answers
log "ready: $EXPORT served on 127.0.0.1"
