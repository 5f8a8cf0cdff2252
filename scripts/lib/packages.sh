# packages.sh: the one way volattach's set-up scripts install Debian
# packages. Source it (it defines functions and runs nothing):
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"
#   ensure_packages qemu-utils tgt
#
# ensure_packages PKG...: installs those of PKG that dpkg does not list as
# installed, in one apt-get run, and does nothing when all are. apt-get runs
# non-interactively (DEBIAN_FRONTEND=noninteractive, keeping changed
# configuration files, never prompting), through sudo when not root, and
# waits up to 10 minutes for the dpkg lock other installers hold. The package
# lists are updated once per run of the outermost script (env-up.sh runs the
# others; VOLATTACH_APT_UPDATED carries it to them). apt's output is shown
# only when it fails, or always with CI=true (a CI log then says what was
# installed); a failure returns apt's status, and the callers' `set -e` stops
# them.

# ensure_packages PKG...: see above.
ensure_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0

	local as_root=()
	[ "$(id -u)" = 0 ] || as_root=(sudo)
	# env inside sudo: sudo drops the caller's environment.
	local apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
	local out status=0
	out=$(mktemp)
	printf '%s: installing %s\n' "$(basename "$0" .sh)" "${missing[*]}" >&2
	if [ "${VOLATTACH_APT_UPDATED:-}" != 1 ]; then
		"${apt[@]}" update -q >"$out" 2>&1 || status=$?
		[ $status -eq 0 ] && export VOLATTACH_APT_UPDATED=1
	fi
	if [ $status -eq 0 ]; then
		"${apt[@]}" install -y -q --no-install-recommends "${missing[@]}" >>"$out" 2>&1 || status=$?
	fi
	if [ $status -ne 0 ] || [ "${CI:-}" = true ]; then
		cat "$out" >&2
	fi
	rm -f "$out"
	return $status
}
