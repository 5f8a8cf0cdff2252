#!/usr/bin/env bash
# env-ceph.sh: install (when missing) and start the single-node Ceph cluster
# the rbd backend's tests and demo use, as ../shared/ENV.md describes: one
# monitor on 127.0.0.1:3300 (msgr2 only), one memstore OSD, cephx on, and a
# pool "volumes" of size 1. Everything lives under VOLATTACH_CEPH_DIR
# (default /var/lib/volattach/ceph):
#   ceph.conf                 the cluster's configuration
#   client.admin.keyring      the administrator's key (set-up only)
#   client.volattach.keyring  the key the backend and the tests use: rbd
#                             profile on the pool "volumes" only
# Idempotent: a cluster that answers is left alone. A memstore OSD keeps its
# data in memory, so an OSD that died lost it: the script then makes the
# cluster again from scratch (test data only).
set -euo pipefail

log() { printf 'env-ceph: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

D=${VOLATTACH_CEPH_DIR:-/var/lib/volattach/ceph}
POOL=volumes
CONF=$D/ceph.conf
ADMIN=(-c "$CONF" -n client.admin -k "$D/client.admin.keyring")

. "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"
ensure_packages ceph-mon ceph-osd ceph-common

# answers: the pool can be listed with the backend's own key (monitor, OSD,
# pool and key all work).
answers() {
	[ -f "$CONF" ] && [ -f "$D/client.volattach.keyring" ] &&
		timeout 15 rbd -c "$CONF" --id volattach -k "$D/client.volattach.keyring" ls "$POOL" >/dev/null 2>&1
}

if answers; then
	log "ready: cluster in $D answers"
	exit 0
fi

# pid_alive FILE: the process named in a pid file runs.
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

mon_answers() { [ -f "$CONF" ] && timeout 10 ceph "${ADMIN[@]}" --connect-timeout 5 mon stat >/dev/null 2>&1; }
osd_up() { timeout 10 ceph "${ADMIN[@]}" --connect-timeout 5 osd dump 2>/dev/null | grep -q '^osd\.0 up'; }

wait_for() { # wait_for DESCRIPTION COMMAND...: poll up to 60 s
	local what=$1; shift
	for _ in $(seq 1 300); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	log "$what did not come up"
	return 1
}

stop_daemons() {
	for f in "$D"/run/mon.a.pid "$D"/run/osd.0.pid; do
		if pid_alive "$f"; then
			kill "$(cat "$f")" 2>/dev/null || true
			for _ in $(seq 1 50); do pid_alive "$f" || break; sleep 0.1; done
			pid_alive "$f" && kill -9 "$(cat "$f")" 2>/dev/null || true
		fi
	done
}

# A cluster whose OSD lost its memory (or never finished) is made again.
if [ -d "$D" ]; then
	if mon_answers && [ -f "$D/osd0/fsid" ] && ! pid_alive "$D/run/osd.0.pid"; then
		log "the memstore OSD is gone with its data: making the cluster again"
		stop_daemons
		$SUDO rm -rf "$D"
	elif ! mon_answers && ! pid_alive "$D/run/mon.a.pid" && [ -d "$D/mon/ceph-a" ] && ! pid_alive "$D/run/osd.0.pid"; then
		log "no daemon runs: making the cluster again"
		$SUDO rm -rf "$D"
	elif ! [ -f "$D/.complete" ]; then
		log "an unfinished set-up is in $D: making the cluster again"
		stop_daemons
		$SUDO rm -rf "$D"
	fi
fi

if ! [ -f "$D/.complete" ]; then
	log "making a single-node cluster in $D"
	$SUDO mkdir -p "$D/run" "$D/log" "$D/mon" "$D/osd0"
	$SUDO chmod 0755 "$D"
	fsid=$(cat /proc/sys/kernel/random/uuid)
	$SUDO tee "$CONF" >/dev/null <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:3300
mon initial members = a
public addr = 127.0.0.1
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
run dir = $D/run
log file = $D/log/\$name.log
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
keyring = $D/\$name.keyring
ms bind msgr1 = false
[mon]
mon data = $D/mon/\$cluster-\$id
[osd]
osd data = $D/osd0
osd objectstore = memstore
memstore device bytes = 2147483648
osd journal size = 0
EOF
	$SUDO chmod 0644 "$CONF"
	$SUDO ceph-authtool --create-keyring "$D/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
	$SUDO ceph-authtool --create-keyring "$D/client.admin.keyring" --gen-key -n client.admin \
		--cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
	$SUDO ceph-authtool "$D/mon.keyring" --import-keyring "$D/client.admin.keyring" >/dev/null
	$SUDO chmod 0600 "$D/mon.keyring" "$D/client.admin.keyring"
	$SUDO monmaptool --create --addv a '[v2:127.0.0.1:3300]' --fsid "$fsid" "$D/monmap" >/dev/null
	$SUDO ceph-mon -c "$CONF" --mkfs -i a --monmap "$D/monmap" --keyring "$D/mon.keyring"
fi

# A monitor that runs but answers slowly (a loaded machine) is waited for,
# never killed: tests may be using it.
if ! mon_answers; then
	if ! pid_alive "$D/run/mon.a.pid"; then
		log "starting ceph-mon"
		$SUDO ceph-mon -c "$CONF" -i a 2>>"$D/log/start.log"
	fi
	wait_for "ceph-mon" mon_answers
fi

if ! [ -f "$D/osd0/fsid" ]; then
	log "making the memstore OSD"
	uuid=$(cat /proc/sys/kernel/random/uuid)
	id=$(ceph "${ADMIN[@]}" osd new "$uuid")
	if [ "$id" != 0 ]; then
		log "ceph osd new gave id $id, want 0"
		exit 1
	fi
	ceph "${ADMIN[@]}" auth get-or-create osd.0 mon 'allow profile osd' osd 'allow *' \
		mgr 'allow profile osd' -o "$D/osd.0.keyring" >/dev/null
	chmod 0600 "$D/osd.0.keyring"
	$SUDO ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >/dev/null 2>&1
	ceph "${ADMIN[@]}" osd crush add-bucket localhost host >/dev/null 2>&1
	ceph "${ADMIN[@]}" osd crush move localhost root=default >/dev/null 2>&1
	ceph "${ADMIN[@]}" osd crush add osd.0 1.0 host=localhost >/dev/null 2>&1
fi
if ! pid_alive "$D/run/osd.0.pid"; then
	log "starting ceph-osd"
	$SUDO ceph-osd -c "$CONF" -i 0 2>>"$D/log/start.log"
fi
wait_for "ceph-osd" osd_up

if ! ceph "${ADMIN[@]}" osd pool ls 2>/dev/null | grep -qx "$POOL"; then
	log "creating pool $POOL"
	ceph "${ADMIN[@]}" osd pool create "$POOL" 8 8 >/dev/null 2>&1
	ceph "${ADMIN[@]}" osd pool set "$POOL" size 1 --yes-i-really-mean-it >/dev/null 2>&1
	rbd "${ADMIN[@]}" pool init "$POOL"
fi
if ! [ -f "$D/client.volattach.keyring" ]; then
	# The backend's own user can use rbd images in the pool and nothing else.
	ceph "${ADMIN[@]}" auth get-or-create client.volattach mon 'profile rbd' \
		osd "profile rbd pool=$POOL" -o "$D/client.volattach.keyring.tmp" >/dev/null
	chmod 0600 "$D/client.volattach.keyring.tmp"
	mv "$D/client.volattach.keyring.tmp" "$D/client.volattach.keyring"
fi
$SUDO touch "$D/.complete"
wait_for "rbd ls $POOL" answers
log "ready: cluster in $D (pool $POOL, user client.volattach)"
