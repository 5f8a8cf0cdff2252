#!/usr/bin/env bash
# env-keystone.sh: install (when missing) and start a real Keystone for
# volattachd's tests and `make serve`, as ../shared/ENV.md describes: Debian's
# keystone package on sqlite, served by keystone-wsgi-public on
# 127.0.0.1:5000, plus python3-openstackclient. Then, idempotently, the
# projects (service, demo, alt), the users (volattach: the service user that
# validates tokens, with the service role; demo and alt: members of their
# projects; admin), and the catalog: compute and volumev3/block-storage
# endpoints of volattachd in region RegionOne (127.0.0.1:8774, `make serve`)
# and region volattach-test (127.0.0.1:18774, the tests).
#
# Generated passwords go to $KEYSTONE_DIR/credentials (mode 0600, shell
# syntax), which tests and `make serve` read. Idempotent: judged by whether
# Keystone answers and the entities exist.
set -euo pipefail

log() { printf 'env-keystone: %s\n' "$*" >&2; }

KEYSTONE_DIR=${VOLATTACH_KEYSTONE_DIR:-/var/lib/volattach/keystone}
KEYSTONE_URL=http://127.0.0.1:5000/v3
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi

. "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"
# The package's own start of keystone is refused without systemd; fine.
# curl: answers() asks Keystone with it.
ensure_packages keystone python3-openstackclient curl

$SUDO mkdir -p "$KEYSTONE_DIR"
$SUDO chmod 0700 "$KEYSTONE_DIR"
conf=$KEYSTONE_DIR/keystone.conf
creds=$KEYSTONE_DIR/credentials
if [ ! -s "$creds" ]; then
	umask 077
	{
		echo "VOLATTACH_KEYSTONE_URL=$KEYSTONE_URL"
		for who in ADMIN SERVICE DEMO ALT; do
			echo "VOLATTACH_KEYSTONE_${who}_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
		done
	} >"$creds.tmp"
	mv "$creds.tmp" "$creds"
fi
# shellcheck disable=SC1090
. "$creds"

if [ ! -s "$conf" ]; then
	cat >"$conf" <<CONF
[DEFAULT]
log_file = $KEYSTONE_DIR/keystone.log
[database]
connection = sqlite:///$KEYSTONE_DIR/keystone.db
[fernet_tokens]
key_repository = $KEYSTONE_DIR/fernet
[credential]
key_repository = $KEYSTONE_DIR/cred
[token]
provider = fernet
expiration = 14400
CONF
fi

answers() { curl -fsS -m 5 "$KEYSTONE_URL" >/dev/null 2>&1; }

start_keystone() {
	log "starting keystone on 127.0.0.1:5000"
	OS_KEYSTONE_CONFIG_FILES=$conf setsid nohup keystone-wsgi-public --host 127.0.0.1 --port 5000 \
		>>"$KEYSTONE_DIR/wsgi.log" 2>&1 </dev/null &
	echo $! >"$KEYSTONE_DIR/wsgi.pid"
	for _ in $(seq 1 300); do answers && break; sleep 0.2; done
	answers || { log "keystone did not come up; see $KEYSTONE_DIR/wsgi.log"; exit 1; }
}

stop_keystone() { # the one this script started, by its recorded pid
	local pid
	pid=$(cat "$KEYSTONE_DIR/wsgi.pid" 2>/dev/null || true)
	if [ -n "$pid" ] && grep -q keystone-wsgi "/proc/$pid/cmdline" 2>/dev/null; then
		kill "$pid" || true
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
}

if ! answers; then
	if [ ! -s "$KEYSTONE_DIR/keystone.db" ] || [ ! -d "$KEYSTONE_DIR/fernet" ]; then
		log "initialising keystone in $KEYSTONE_DIR"
		km() { keystone-manage --config-file "$conf" "$@" >>"$KEYSTONE_DIR/manage.log" 2>&1; }
		km db_sync
		km fernet_setup --keystone-user root --keystone-group root
		km credential_setup --keystone-user root --keystone-group root
		# A traceback about eventlet at exit is harmless (ENV.md); judge by the
		# bootstrap's effect below.
		keystone-manage --config-file "$conf" bootstrap \
			--bootstrap-password "$VOLATTACH_KEYSTONE_ADMIN_PASSWORD" \
			--bootstrap-admin-url "$KEYSTONE_URL" --bootstrap-public-url "$KEYSTONE_URL" \
			--bootstrap-internal-url "$KEYSTONE_URL" \
			--bootstrap-region-id RegionOne >>"$KEYSTONE_DIR/manage.log" 2>&1 || true
	fi
	# WAL journal: Keystone (one process, several connections) sometimes
	# leaves a read transaction open; in the default rollback journal that
	# blocks every later write ("database is locked", 500). In WAL mode
	# readers never block the writer. The mode is kept in the file.
	python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL")' \
		"$KEYSTONE_DIR/keystone.db"
	start_keystone
fi

# The entities and the catalog, through Keystone's REST API in one process.
# Keystone on sqlite sometimes keeps its database locked after a request
# (every write then answers 500 "database is locked"); a restart clears it.
export VOLATTACH_KEYSTONE_ADMIN_PASSWORD VOLATTACH_KEYSTONE_SERVICE_PASSWORD \
	VOLATTACH_KEYSTONE_DEMO_PASSWORD VOLATTACH_KEYSTONE_ALT_PASSWORD
for attempt in 1 2 3 4; do
	rc=0
	python3 "$(dirname "$0")/keystone-provision.py" "$KEYSTONE_URL" || rc=$?
	[ "$rc" = 0 ] && break
	if [ "$rc" != 75 ] || [ "$attempt" = 4 ]; then
		log "provisioning failed; see $KEYSTONE_DIR/wsgi.log"
		exit 1
	fi
	log "keystone's database is locked; restarting keystone"
	stop_keystone
	answers && { log "a keystone this script did not start answers on port 5000 and is wedged"; exit 1; }
	start_keystone
done
log "ready: keystone at $KEYSTONE_URL; credentials in $creds"
