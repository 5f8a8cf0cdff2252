#!/usr/bin/env bash
# fresh-machine-check.sh: shows that env-ceph.sh and env-nfs.sh bring Ceph
# and nfs-ganesha up on a fresh machine by themselves, without touching the
# daemons of the machine it runs on:
#   1. debootstrap makes a minimal Debian 12 (bookworm, variant minbase)
#      in VOLATTACH_FRESH_ROOT (default /var/tmp/volattach-fresh-root),
#      and this repository's HEAD is cloned into it (/root/volattach);
#   2. a new network, mount and PID namespace holds the root: its own
#      loopback (the host's monitor on 127.0.0.1:3300, rpcbind and ganesha
#      are not reachable from it, and its daemons clash with none of them),
#      its own /proc; apt reaches only the Debian mirror, through a relay
#      (lib/relay.py: a port in the namespace, a unix socket in the root, a
#      connection to the mirror from the host);
#   3. inside the root (chroot): env-ceph.sh, then env-nfs.sh, each timed;
#      an rbd image is created, shown with `rbd info` and written and read
#      through QEMU's librbd; a pattern written to a file in the export is
#      read back through nfs-ganesha by QEMU's NFS client; then both
#      scripts run again and must find everything answering;
#   4. the namespace's init is killed (every process in it dies with it),
#      nothing may be left running in the root, and the root is removed
#      (VOLATTACH_FRESH_KEEP=1 keeps its files).
# VOLATTACH_FRESH_SCRIPTS replaces "env-ceph.sh env-nfs.sh" (for example
# with env-up.sh, which also starts libvirtd, tgtd and Keystone; the rbd
# and nfs checks still follow). VOLATTACH_FRESH_BASE names an already
# debootstrapped directory to copy instead of running debootstrap (quicker
# when run again). Run as root.
set -euo pipefail

log() { printf 'fresh-machine-check: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
	log "run as root: it uses debootstrap, namespaces and chroot"
	exit 1
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(git -C "$HERE/.." rev-parse --show-toplevel)
COMMIT=$(git -C "$REPO" rev-parse HEAD)
ROOT=${VOLATTACH_FRESH_ROOT:-/var/tmp/volattach-fresh-root}
BASE=${VOLATTACH_FRESH_BASE:-}
MIRROR=${VOLATTACH_FRESH_MIRROR:-http://deb.debian.org/debian}
KEEP=${VOLATTACH_FRESH_KEEP:-}
RELAY_PORT=3142
# The scripts run in the root, in order (env-up.sh runs every one).
SCRIPTS=${VOLATTACH_FRESH_SCRIPTS:-env-ceph.sh env-nfs.sh}
MARKER=.volattach-fresh-root

. "$HERE/lib/packages.sh"
ensure_packages debootstrap git python3 util-linux iproute2 procps

# mounted_under DIR: a mount of this namespace lies under DIR.
mounted_under() { awk -v d="$1/" 'index($5, d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; }

# remove_root: removes the root's files, never through a mount.
remove_root() {
	if mounted_under "$ROOT"; then
		log "something is mounted under $ROOT; not removing it"
		return 1
	fi
	rm -rf --one-file-system "$ROOT"
}

if [ -e "$ROOT" ]; then
	if ! [ -e "$ROOT/$MARKER" ]; then
		log "$ROOT exists and is not a root this script made; not touching it"
		exit 1
	fi
	log "removing the root a previous run left"
	remove_root
fi

unshare_pid= init= relay_pid= nspid= status=0
# in_root_pids: the processes in the check's PID namespace or chrooted
# into the root.
in_root_pids() {
	local p
	for p in /proc/[0-9]*; do
		if [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] ||
			{ [ -n "$nspid" ] && [ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$nspid" ]; }; then
			echo "${p#/proc/}"
		fi
	done
}
cleanup() {
	local rc=$?
	set +e
	[ "$status" = 0 ] && status=$rc
	# The PID namespace's init: the kernel kills every process in the
	# namespace with it (the daemons the scripts started included).
	[ -n "$init" ] && kill -KILL "$init" 2>/dev/null
	[ -n "$unshare_pid" ] && wait "$unshare_pid" 2>/dev/null
	[ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
	local left
	for _ in $(seq 1 50); do
		left=$(in_root_pids)
		[ -z "$left" ] && break
		sleep 0.1
	done
	if [ -n "$left" ]; then
		log "still running in the root: $(echo $left)"
		status=1
	else
		log "nothing runs in the root any more"
	fi
	if [ -z "$KEEP" ] && [ -z "$left" ]; then
		remove_root && log "removed $ROOT"
	fi
	exit $status
}
trap cleanup EXIT
trap 'status=1; exit 1' INT TERM

t0=$SECONDS
if [ -n "$BASE" ]; then
	log "copying the debootstrapped $BASE to $ROOT"
	cp -a "$BASE" "$ROOT"
else
	log "debootstrap bookworm (minbase) from $MIRROR into $ROOT"
	mkdir -p "$ROOT"
	debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1 ||
		{ cat "$ROOT.debootstrap.log" >&2; status=1; exit 1; }
	rm -f "$ROOT.debootstrap.log"
fi
touch "$ROOT/$MARKER"
log "fresh root ready in $((SECONDS - t0)) s"
git clone -q --no-hardlinks "$REPO" "$ROOT/root/volattach"
git -C "$ROOT/root/volattach" checkout -q --detach "$COMMIT"
log "cloned $REPO at $COMMIT into $ROOT/root/volattach"
# The machine's network set-up, not the project's: apt's proxy is the relay.
echo "Acquire::http::Proxy \"http://127.0.0.1:$RELAY_PORT\";" >"$ROOT/etc/apt/apt.conf.d/00fresh-machine-relay"

# Inside: the root is a mount point of its own, as / is on a machine (a
# chrooted process sees no mount for its / otherwise, and ganesha's VFS
# FSAL finds no file system for the export); a veth pair gives the
# namespace an address besides loopback, as a machine has (ganesha
# resolves Bind_addr with AI_ADDRCONFIG, which fails with loopback only);
# 192.0.2.1 (TEST-NET-1) leads nowhere.
unshare --net --mount --pid --fork --kill-child --propagation private -- /bin/bash -c '
	set -e
	mount --bind "$1" "$1"
	mount -t proc proc "$1/proc"
	mount -t sysfs sysfs "$1/sys"
	mount -t tmpfs -o mode=1777 tmpfs "$1/dev/shm"
	ip link set lo up
	ip link add fresh0 type veth peer name fresh1
	ip addr add 192.0.2.1/24 dev fresh0
	ip link set fresh0 up
	ip link set fresh1 up
	touch "$1/.ns-ready"
	exec sleep infinity' _ "$ROOT" &
unshare_pid=$!
for _ in $(seq 1 100); do
	[ -e "$ROOT/.ns-ready" ] && break
	sleep 0.1
done
init=$(pgrep -P "$unshare_pid" || true)
if ! [ -e "$ROOT/.ns-ready" ] || [ -z "$init" ]; then
	log "the namespace did not come up"
	status=1
	exit 1
fi
nspid=$(readlink "/proc/$init/ns/pid")
log "namespace up (init pid $init)"

host=${MIRROR#*://}
host=${host%%/*}
python3 "$HERE/lib/relay.py" unix-to-tcp "$ROOT/run/apt-relay.sock" "$host" 80 &
relay_pid=$!
nsenter -t "$init" -n -m -p -- python3 "$HERE/lib/relay.py" tcp-to-unix "$RELAY_PORT" "$ROOT/run/apt-relay.sock" &

in_root() {
	nsenter -t "$init" -n -m -p -- chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 CI="${CI:-}" \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

for _ in $(seq 1 100); do
	in_root bash -c 'exec 3<>/dev/tcp/127.0.0.1/'$RELAY_PORT 2>/dev/null && break
	sleep 0.1
done

# The host's daemons are out of reach from the namespace.
if in_root bash -c 'exec 3<>/dev/tcp/127.0.0.1/3300' 2>/dev/null; then
	log "127.0.0.1:3300 answers inside the namespace before env-ceph.sh ran"
	status=1
	exit 1
fi

run_timed() { # run_timed SCRIPT: runs scripts/SCRIPT in the clone, timed
	local t=$SECONDS
	in_root bash -c "cd /root/volattach && bash scripts/$1"
	log "$1 took $((SECONDS - t)) s"
}

for script in $SCRIPTS; do run_timed "$script"; done

CEPH=/var/lib/volattach/ceph
RBD=(rbd -c $CEPH/ceph.conf --id volattach -k $CEPH/client.volattach.keyring)
in_root "${RBD[@]}" create volumes/fresh-check --size 64M
in_root "${RBD[@]}" info volumes/fresh-check
check_io() { # check_io IMAGE COMMAND...: qemu-io, failing on a pattern mismatch
	local img=$1 out
	shift
	out=$(in_root qemu-io -f raw "$img" "$@" 2>&1) || { echo "$out" >&2; return 1; }
	echo "$out"
	if grep -q 'Pattern verification failed' <<<"$out"; then return 1; fi
}
check_io "rbd:volumes/fresh-check:conf=$CEPH/ceph.conf:id=volattach:keyring=$CEPH/client.volattach.keyring" \
	-c 'write -P 0x5a 0 64k' -c 'read -P 0x5a 0 64k'
in_root "${RBD[@]}" rm --no-progress volumes/fresh-check
log "rbd: image created, shown, written and read through librbd, removed"

EXPORT=/var/lib/volattach/nfs/export
in_root qemu-img create -q -f raw $EXPORT/fresh-check.img 1M
check_io $EXPORT/fresh-check.img -c 'write -P 0x6e 0 64k'
check_io "nfs://127.0.0.1$EXPORT/fresh-check.img" -c 'read -P 0x6e 0 64k'
in_root rm $EXPORT/fresh-check.img
log "nfs: a pattern written into the export read back through nfs-ganesha"

log "running both scripts again: they must find everything answering"
for script in $SCRIPTS; do run_timed "$script"; done
log "PASS: Ceph and nfs-ganesha came up on a fresh Debian 12 root by themselves"
