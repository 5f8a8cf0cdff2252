#!/usr/bin/env bash
# bench.sh: the measurements of `make bench`, a few minutes on a small
# machine, then a summary table with the ratios. The raw `go test -bench`
# output (benchstat-friendly) goes to $BENCH_OUT/raw.txt, the memory profile's
# top list to $BENCH_OUT/memprofile-top.txt, the summary to
# $BENCH_OUT/summary.txt.
#
#   BENCH_OUT        output directory (default bench-out)
#   BENCH_COUNT      -count of every benchmark (default 1; 5+ for benchstat)
#   CYCLES_BENCHTIME -benchtime of the fake-hypervisor throughput at 1 and 8
#                    instances (default 3s; an op there is one cycle on every
#                    instance, and the raw Txn rate beside it runs as long)
#   CYCLES64_BENCHTIME  the same at 64 instances (default 10s: a round takes
#                    seconds there, and p99 wants a few hundred cycles)
#   WRITES_N         cycles counted for writes per attach/detach (default 20)
#   MEMORY_N         cycles measured for memory per attach (default 50)
#   LIBVIRT_N        interleaved stack/go-libvirt pairs (default 20)
#   VOLATTACH_BENCH_SCALE=1  also run the scale benchmarks (tens of minutes)
#   BENCH_ONLY       summarise an existing $BENCH_OUT/raw.txt, run nothing
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH=/usr/local/go/bin:$PATH
out=${BENCH_OUT:-bench-out}
mkdir -p "$out" "$out/bin"
out=$(cd "$out" && pwd)
raw=$out/raw.txt
count=${BENCH_COUNT:-1}
fail=0

# run PKGDIR BENCH BENCHTIME [extra test flags...]: one benchmark from the
# package's prebuilt test binary, in the package directory as go test does.
run() {
	local dir=$1 bench=$2 benchtime=$3
	shift 3
	local bin=$out/bin/$(basename "$dir").test
	echo "== $dir $bench (-benchtime $benchtime -count $count)" >&2
	if ! (cd "$root/$dir" && "$bin" -test.run '^$' -test.bench "$bench" -test.benchtime "$benchtime" \
		-test.count "$count" -test.benchmem -test.timeout 60m "$@" 2>>"$out/stderr.txt" | tee -a "$raw" |
		{ grep -E '^(Benchmark|--- (FAIL|SKIP)|    .*(skip|SKIP|FAIL|Error|error))' || true; }); then
		echo "bench: $dir $bench failed (see $raw and $out/stderr.txt)" >&2
		fail=1
	fi
}

if [ -z "${BENCH_ONLY:-}" ]; then
	: >"$raw"
	: >"$out/stderr.txt"
	pkgs="compute adapters/node"
	if [ "${VOLATTACH_BENCH_SCALE:-}" = 1 ]; then pkgs="$pkgs adapters/etcd"; fi
	for pkg in $pkgs; do
		go test -c -o "$out/bin/$(basename $pkg).test" "./$pkg" || exit 1
	done
	run compute '^BenchmarkEtcdWrites$' "${WRITES_N:-20}x"
	run compute '^BenchmarkAttachDetach$/=1$' "${CYCLES_BENCHTIME:-3s}"
	run compute '^BenchmarkAttachDetach$/=8$' "${CYCLES_BENCHTIME:-3s}"
	run compute '^BenchmarkAttachDetach$/=64$' "${CYCLES64_BENCHTIME:-10s}"
	run compute '^BenchmarkAttachMemory$' "${MEMORY_N:-50}x" \
		-test.memprofile "$out/mem.out" -test.memprofilerate 4096
	run adapters/node '^BenchmarkAttachDetachSCSI$/^path=interleaved$' "${LIBVIRT_N:-20}x"
	if [ "${VOLATTACH_BENCH_SCALE:-}" = 1 ]; then
		# The scale benchmarks (BenchmarkScale* in compute and adapters/etcd,
		# gated by this variable) run once each: each builds its own
		# population. VOLATTACH_BENCH_SCALE_STORED / _ATTACHED pick sizes.
		run compute '^BenchmarkScale' 1x -test.timeout 180m
		run adapters/etcd '^BenchmarkScale' 1x -test.timeout 180m
	fi
	if [ -s "$out/mem.out" ]; then
		{
			go tool pprof -sample_index=alloc_space -top -nodecount=25 "$out/bin/compute.test" "$out/mem.out"
			echo
			echo "== cumulative, volattach code only"
			go tool pprof -sample_index=alloc_space -top -cum -nodecount=40 -show='volattach/volattach' \
				"$out/bin/compute.test" "$out/mem.out"
		} >"$out/memprofile-top.txt" 2>/dev/null
	fi
fi

# The summary: the last figure of each metric (-count N: their mean).
awk -v memtop="$out/memprofile-top.txt" '
function metric(name, unit,   k) { k = name SUBSEP unit; return (k in n) ? sprintf("%.2f", sum[k] / n[k]) : "-" }
function fmt(name, unit, f,   k) { k = name SUBSEP unit; return (k in n) ? sprintf(f, sum[k] / n[k]) : "-" }
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 3; i + 1 <= NF; i += 2) { k = name SUBSEP $(i + 1); sum[k] += $i; n[k]++ }
	next
}
/bench_writes_test.go:[0-9]+: attach:/ { sub(/.*attach: /, ""); attachLog = $0 }
/bench_writes_test.go:[0-9]+: detach:/ { sub(/.*detach: /, ""); detachLog = $0 }
END {
	w = "BenchmarkEtcdWrites"
	print "== etcd writes, counted at the client (aim 3, physical limit 2)"
	printf "  per attach  %6s  (etcd revisions %s)\n", metric(w, "writes/attach"), metric(w, "revisions/attach")
	printf "  per detach  %6s  (etcd revisions %s)\n", metric(w, "writes/detach"), metric(w, "revisions/detach")
	if (attachLog != "") print "  attach: " attachLog
	if (detachLog != "") print "  detach: " detachLog
	print ""
	print "== fake hypervisor attach+detach, concurrent (one volume per instance)"
	printf "  %-9s %9s %9s %9s %12s %10s %9s\n", "instances", "cycles/s", "p50 ms", "p99 ms", "writes/cycle", "raw txn/s", "vs-raw"
	for (c = 1; c <= 64; c *= 8) {
		a = "BenchmarkAttachDetach/instances=" c; r = "BenchmarkAttachDetach/raw-guarded-txn-writers=" c
		printf "  %-9s %9s %9s %9s %12s %10s %9s\n", c, fmt(a, "cycles/s", "%.1f"), metric(a, "p50-ms"), metric(a, "p99-ms"),
			metric(a, "writes/cycle"), fmt(r, "txn/s", "%.0f"), fmt(a, "vs-raw", "%.3f")
	}
	print "  vs-raw = cycles/s / (raw guarded txn/s at as many writers / writes per cycle); aim at 64: >= 0.5"
	print ""
	s = "BenchmarkAttachDetachSCSI/path=interleaved"
	print "== whole stack vs go-libvirt, SCSI file disk attach+detach on a real guest, interleaved (aim <= 1.2x)"
	printf "  mean: stack %s ms, go-libvirt %s ms, ratio %s\n", metric(s, "stack-ms/op"), metric(s, "golibvirt-ms/op"), fmt(s, "stack/golibvirt", "%.3f")
	printf "  p50:  stack %s ms, go-libvirt %s ms, ratio %s\n", metric(s, "stack-p50-ms"), metric(s, "golibvirt-p50-ms"), fmt(s, "p50-stack/golibvirt", "%.3f")
	print ""
	m = "BenchmarkAttachMemory/etcd=process"
	print "== memory per attach+detach, client side (etcd in another process)"
	printf "  %s B/op, %s allocs/op; %s etcd writes and %s etcd RPCs (writes + reads) per cycle\n", fmt(m, "B/op", "%.0f"), fmt(m, "allocs/op", "%.0f"), metric(m, "writes/cycle"), metric(m, "rpcs/cycle")
	if ((getline line < memtop) > 0) print "  where: " memtop " (pprof -top, alloc_space)"
	scale = 0
	for (k in n) { split(k, p, SUBSEP); if (p[1] ~ /^BenchmarkScale/) scale = 1 }
	if (scale) {
		print ""
		print "== scale (VOLATTACH_BENCH_SCALE=1)"
		for (k in n) {
			split(k, p, SUBSEP)
			if (p[1] ~ /^BenchmarkScale/ && p[2] != "ns/op" && p[2] != "B/op" && p[2] != "allocs/op")
				printf "  %s %s %.3f\n", p[1], p[2], sum[k] / n[k] | "sort -V"
		}
		close("sort -V")
	}
}' "$raw" | tee "$out/summary.txt"
echo
echo "raw output (benchstat): $raw"
exit $fail
