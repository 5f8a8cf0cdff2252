#!/usr/bin/env bash
# docs.sh write|check: the generated documents in docs/, from the tables in
# the code: state-machines.md (Mermaid diagrams and Markdown tables) and one
# Graphviz SVG per table (docs/<table>.svg, drawn by dot from the graphviz
# package, which env-up.sh installs). `write` regenerates them (make docs);
# `check` fails when one is stale, missing or left over (make docs-check).
# The command is built once; dot is fast, so the check takes seconds.
set -euo pipefail

mode=${1:-}
case "$mode" in write | check) ;; *) echo "usage: $0 write|check" >&2; exit 2 ;; esac
command -v dot >/dev/null || { echo "docs: dot not found: run 'make env' (scripts/env-up.sh installs graphviz)" >&2; exit 1; }

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/statetables" ./examples/statetables
mkdir "$tmp/out"
"$tmp/statetables" -format doc >"$tmp/out/state-machines.md"
for t in $("$tmp/statetables" -format names); do
	"$tmp/statetables" -format dot -table "$t" | dot -Tsvg >"$tmp/out/$t.svg"
done

if [ "$mode" = write ]; then
	rm -f docs/*.*.svg
	cp "$tmp"/out/* docs/
	exit 0
fi
stale=()
for f in "$tmp"/out/*; do
	cmp -s "$f" "docs/$(basename "$f")" || stale+=("docs/$(basename "$f")")
done
for f in docs/*.*.svg; do
	[ -e "$f" ] && [ ! -e "$tmp/out/$(basename "$f")" ] && stale+=("$f (no such table)")
done
if [ ${#stale[@]} -gt 0 ]; then
	echo "stale: ${stale[*]}: run 'make docs' and commit them" >&2
	exit 1
fi
