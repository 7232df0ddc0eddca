#!/bin/sh
# bench-alltoall.sh: does the harness add anything measurable to an
# alltoallv? The issue's check: for messages of 1 MiB and more, the alltoall
# suite's busbw is within 5% of a bare MPI_Alltoallv loop with identical
# counts, timed in the same run.
#
# tests/tools/a2a_bare runs, in one mpirun job, the suite through its hooks
# on the CPU backend and a bare MPI_Alltoallv loop with the counts
# recomputed from the seed, alternating A B / B A per iteration, each timed
# as the runner times an iteration (barrier, exchange, slowest rank), and
# compares the medians, and the pairs (the gated figure: the median of bare
# time / suite time over back-to-back pairs, which a shared machine's load
# disturbs least). Cases: the uniform size sweep 1M..64M (dispatch
# only) and routed moe traffic (dispatch + combine, balanced and skewed), at
# -np 2 and -np 4 (oversubscribed on small machines; --mca btl self,tcp).
#
# Writes bench/bench-alltoall.md and exits 1 if a busbw ratio is off by
# more than 5% or a check fails.
# Usage: ci/bench-alltoall.sh [SECONDS [MIN_PAIRS]]: about SECONDS (default 6)
# of timed pairs per case, at least MIN_PAIRS (default 40), at most 5000.
# A2A_BARE overrides the binary.
set -u
cd "$(dirname "$0")/.."
A2A_BARE=${A2A_BARE:-}
SECONDS_PER_CASE=${1:-6}
ITERS=${2:-40}
OUT=bench
mkdir -p "$OUT"
if ! command -v mpirun > /dev/null 2>&1; then
	echo "bench: mpirun not found (install openmpi-bin)" >&2
	exit 1
fi
if [ -z "$A2A_BARE" ]; then
	A2A_BARE=./build/tests/a2a_bare
	make --no-print-directory "$A2A_BARE" > /dev/null ||
		{ echo "bench: cannot build $A2A_BARE" >&2; exit 1; }
fi
if [ "$(id -u)" = 0 ]; then
	export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
MPIRUN="mpirun --oversubscribe --mca btl self,tcp"
MOE="mode=moe hidden=2048 tokens=256 experts=64 top_k=8"
lines="$OUT/.bench-alltoall.lines"
: > "$lines"
load0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
for np in 2 4; do
	for args in "mode=uniform phase=dispatch bytes=1M,4M,16M,64M" "$MOE skew=0" "$MOE skew=1.2"; do
		# shellcheck disable=SC2086
		$MPIRUN -np $np "$A2A_BARE" --iters "$ITERS" --seconds "$SECONDS_PER_CASE" --warmup 3 $args > "$lines.tmp" 2>&1 ||
			{ cat "$lines.tmp" >&2; echo "bench: a2a_bare -np $np $args failed" >&2; exit 1; }
		grep '^a2a ' "$lines.tmp" | sed "s|\$| args=$(echo "$args" | tr ' ' ':')|" >> "$lines"
	done
done
rm -f "$lines.tmp"
load1=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)

awk -v cpu="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" -v cores="$(getconf _NPROCESSORS_ONLN)" \
    -v mpi="$(mpirun --version 2>&1 | head -n 1)" -v secs="$SECONDS_PER_CASE" \
    -v load="${load0:-?} at the start, ${load1:-?} at the end" '
function val(k,   i) { for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) return substr($i, length(k) + 2); return "" }
BEGIN {
	printf "# alltoall: the suite against a bare MPI_Alltoallv loop\n\n"
	printf "- machine: %s, %d cores; %s; `mpirun --oversubscribe --mca btl self,tcp`\n", cpu, cores, mpi
	printf "- load average (1, 5, 15 min): %s\n", load
	printf "- pairs: timed iterations of each (about %s s of them per case), interleaved (A B / B A), after 3 warm-up pairs; the slowest rank per iteration, then the median\n", secs
	printf "- bytes: what one rank sends per iteration, self included (nccl-tests size; summed over dispatch and combine for moe)\n"
	printf "- busbw = bytes / p50 x (n-1)/n (nccl-tests alltoall); ratio = suite busbw / bare busbw from the two medians\n"
	printf "- paired = the median over iterations of bare time / suite time, each pair run back to back: the same ratio with what other processes did to both cancelled. It is the one gated (target: within 5%% of 1), since on a shared machine the ratio of medians also measures the load\n"
	printf "- check: the suite verified every byte it received and got back (exact)\n\n"
	printf "| ranks | case | bytes | pairs | suite p50 ms | bare p50 ms | suite busbw GB/s | bare busbw GB/s | ratio | paired | check | verdict |\n"
	printf "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n"
	ok = 1
}
/^a2a / {
	s = val("suite_p50_s"); b = val("bare_p50_s"); r = b / s; pr = val("paired_busbw_ratio")
	args = val("args"); gsub(":", " ", args); sub(/ bytes=[^ ]*/, "", args)
	pass = (pr >= 0.95 && pr <= 1.05) && val("check") == "ok"
	ok = ok && pass
	printf "| %d | %s | %.0f | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %s | %s |\n", val("np"), args, val("bytes"), val("iters"), s * 1e3, b * 1e3, val("suite_busbw_gbps"), val("bare_busbw_gbps"), r, pr, val("check"), pass ? "pass" : "FAIL"
}
END { exit ok ? 0 : 1 }' "$lines" > "$OUT/bench-alltoall.md"
rc=$?
rm -f "$lines"
cat "$OUT/bench-alltoall.md"
exit $rc
