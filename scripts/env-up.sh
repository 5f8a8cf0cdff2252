#!/usr/bin/env bash
# env-up.sh: install (when missing) and start what volattach's demo and tests
# need on a Debian 12 machine without systemd, as ../shared/ENV.md describes:
# QEMU and qemu-utils, libvirtd with virtlogd, and tgtd. Idempotent: a second
# run finds everything installed and running and changes nothing.
set -euo pipefail

log() { printf 'env-up: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

. "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"
# graphviz: dot draws docs/*.svg from the tables (make docs, make docs-check).
# procps: pgrep and pkill, below.
ensure_packages libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 \
	qemu-utils qemu-block-extra tgt graphviz procps

# libvirtd's QEMU driver refuses to start without the libvirt-qemu user; the
# package that normally creates it (libvirt-daemon-system) expects systemd.
getent group kvm >/dev/null || $SUDO groupadd -r kvm
getent group libvirt-qemu >/dev/null || $SUDO groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
	$SUDO useradd -r -g libvirt-qemu -s /usr/sbin/nologin libvirt-qemu
$SUDO mkdir -p /var/log/libvirt /var/run/libvirt /var/lib/libvirt/images

# Without udev, /dev/kvm keeps the 0600 root mode the container gives it, and
# QEMU (running as libvirt-qemu) cannot open it: libvirt then discards its
# cached QEMU capabilities and probes QEMU again on every define (35 s seen).
# Debian's udev rules make it 0666 root:kvm; do the same.
if [ -e /dev/kvm ]; then
	$SUDO chgrp kvm /dev/kvm 2>/dev/null || true
	$SUDO chmod 0666 /dev/kvm 2>/dev/null || log "cannot chmod /dev/kvm; libvirt will be slow"
fi

# running NAME: a live process NAME (zombies left by a killed daemon, which a
# container's init may never reap, do not count).
running() { pgrep -x "$1" -r R,S,D,I >/dev/null 2>&1; }

wait_for() { # wait_for DESCRIPTION COMMAND...: poll up to 30 s
	local what=$1; shift
	for _ in $(seq 1 150); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	log "$what did not come up"
	return 1
}

running virtlogd || { log "starting virtlogd"; $SUDO virtlogd -d; }
if ! virsh -c qemu:///system version >/dev/null 2>&1; then
	if running libvirtd; then
		log "libvirtd runs but does not answer; restarting it"
		$SUDO pkill -x libvirtd || true
		for _ in $(seq 1 50); do running libvirtd || break; sleep 0.1; done
	fi
	log "starting libvirtd"
	$SUDO libvirtd -d
fi
wait_for "libvirtd" virsh -c qemu:///system version

# tgtd is checked by asking it: a tgtd killed without cleaning up leaves
# nothing a new one trips over (its socket is in the abstract namespace).
if ! tgtadm --lld iscsi --op show --mode target >/dev/null 2>&1; then
	log "starting tgtd"
	$SUDO tgtd
fi
wait_for "tgtd" tgtadm --lld iscsi --op show --mode target

bash "$(dirname "${BASH_SOURCE[0]}")/env-ceph.sh" # Ceph RBD: one monitor, a memstore OSD, pool "volumes"
bash "$(dirname "${BASH_SOURCE[0]}")/env-nfs.sh"  # nfs-ganesha serving one directory on 127.0.0.1
log "ready: $(virsh -c qemu:///system version 2>/dev/null | grep -i 'running hypervisor' || true)"
bash "$(dirname "$0")/env-keystone.sh"
