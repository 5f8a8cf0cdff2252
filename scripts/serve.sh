#!/usr/bin/env bash
# serve.sh (make serve): start volattachd the way a user tries it: the real
# services (env-up.sh, Keystone included), an embedded etcd, the iSCSI
# backend, and one running OS-less guest registered as a server of the demo
# project; then print the environment that makes `openstack server add
# volume`, `openstack volume attachment list` and friends work at once.
# Ctrl-C stops volattachd (gracefully) and leaves the guest and the data in
# $VOLATTACH_SERVE_DIR for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'serve: %s\n' "$*" >&2; }
GUEST=${VOLATTACH_SERVE_GUEST:-volattach-serve}
DIR=${VOLATTACH_SERVE_DIR:-/var/lib/volattach/serve}
LISTEN=127.0.0.1:8774 # the RegionOne endpoints env-keystone.sh puts in the catalog
KEYSTONE_DIR=${VOLATTACH_KEYSTONE_DIR:-/var/lib/volattach/keystone}
export PATH=/usr/local/go/bin:$PATH

bash scripts/env-up.sh
# shellcheck disable=SC1091
. "$KEYSTONE_DIR/credentials"

mkdir -p "$DIR"
chmod 0755 "$DIR" # QEMU's user reaches the volume files below it
go build -o "$DIR/volattachd" ./cmd/volattachd

if ! virsh -c qemu:///system dominfo "$GUEST" >/dev/null 2>&1; then
	log "defining guest $GUEST (64 MiB, no OS, virtio-scsi)"
	xml=$(mktemp)
	cat >"$xml" <<XML
<domain type='qemu'>
  <name>$GUEST</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <controller type='scsi' model='virtio-scsi'/>
    <graphics type='vnc' listen='127.0.0.1'/>
  </devices>
</domain>
XML
	virsh -c qemu:///system define "$xml" >/dev/null
	rm -f "$xml"
fi
virsh -c qemu:///system domstate "$GUEST" | grep -q running || virsh -c qemu:///system start "$GUEST" >/dev/null
uuid=$(virsh -c qemu:///system domuuid "$GUEST" | tr -d '[:space:]')

project=$(VOLATTACH_KEYSTONE_ADMIN_PASSWORD=$VOLATTACH_KEYSTONE_ADMIN_PASSWORD \
	python3 scripts/keystone-provision.py "$VOLATTACH_KEYSTONE_URL" --project-id demo)
( umask 077; printf '%s\n' "$VOLATTACH_KEYSTONE_SERVICE_PASSWORD" >"$DIR/keystone-service-password" )

"$DIR/volattachd" -role both -listen "$LISTEN" -data-dir "$DIR" -backends iscsi -disk-bus scsi \
	-auth keystone -keystone-url "$VOLATTACH_KEYSTONE_URL" -keystone-user volattach \
	-keystone-password-file "$DIR/keystone-service-password" -keystone-project service \
	-register-guests "$GUEST" -guest-project "$project" -host "$(hostname)" \
	2>>"$DIR/volattachd.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid' INT TERM
for _ in $(seq 1 600); do
	curl -fsS -m 2 "http://$LISTEN/healthz" >/dev/null 2>&1 && break
	kill -0 $pid 2>/dev/null || { log "volattachd stopped; see $DIR/volattachd.log"; tail -5 "$DIR/volattachd.log" >&2; exit 1; }
	sleep 0.2
done

cat <<ENV

volattachd serves http://$LISTEN (compute: /compute/v2.1, volume: /volume/v3/<project>,
metrics: /metrics, health: /healthz); log in $DIR/volattachd.log.
Guest $GUEST is server $uuid of project demo. In another shell, paste:

. $KEYSTONE_DIR/credentials
export OS_AUTH_URL=$VOLATTACH_KEYSTONE_URL OS_IDENTITY_API_VERSION=3 OS_REGION_NAME=RegionOne \\
  OS_USERNAME=demo OS_PASSWORD=\$VOLATTACH_KEYSTONE_DEMO_PASSWORD OS_PROJECT_NAME=demo \\
  OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default

openstack volume create --size 1 vol1
openstack server add volume $uuid vol1
openstack --os-volume-api-version 3.27 volume attachment list
virsh -c qemu:///system domblklist $GUEST     # the disk, serial = the volume id
openstack server remove volume $uuid vol1

Ctrl-C stops volattachd.
ENV
wait $pid
