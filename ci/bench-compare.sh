#!/bin/sh
# bench-compare.sh: the false-alarm and detection rates of `moebench compare`,
# measured on this machine with real runs (not a unit test: it takes minutes).
#
#   false alarms: PAIRS comparisons of two runs of the same configuration at
#     the default threshold, target 0 comparisons with a regression: (a) the
#     quick preset on the CPU, what ci/perf-gate.sh runs; (b) one small sgemm
#     on one thread, a real kernel that other processes' load disturbs less.
#   detection: PAIRS comparisons of a run against one 10% slower: every one
#     must be a regression. The slowdown is exact: the null backend spins
#     MOEBENCH_NULL_DELAY_US microseconds in every sync (DELAY_US, default
#     200, against 1.1 times that), compared with --include-invalid (null
#     cases are always invalid). The same delay on both sides measures the
#     false alarms of that setup too. Skipped, with a message, when the null
#     backend ignores the variable. Load from other processes preempts
#     samples (4-16 ms stalls on a busy 2-CPU machine) and costs the test
#     power; the null rows are repeated at 3 x ITERS iterations a run to show
#     what more samples buy back.
#
# Writes bench/bench-compare.md; exits 1 if a target is missed.
# Usage: ci/bench-compare.sh [PAIRS] [ITERS]   (MOEBENCH, JSONQ override the
# binaries; DELAY_US the null backend's delay)
set -u
cd "$(dirname "$0")/.."
MOEBENCH=${MOEBENCH:-./build/moebench}
JSONQ=${JSONQ:-./build/tests/jsonq}
PAIRS=${1:-20}
ITERS=${2:-10}
DELAY_US=${DELAY_US:-200}
SLOW_US=$((DELAY_US + DELAY_US / 10))
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
OUT=bench
W=$OUT/compare
rm -rf "$W"
mkdir -p "$W"

# run DIR ITERS ENV ARGS...: one moebench run into DIR with the
# environment assignments ENV (may be empty); prints the result file
run() {
	d=$1 it=$2 e=$3
	shift 3
	mkdir -p "$d"
	# shellcheck disable=SC2086 # ENV is a list of assignments
	env $e "$MOEBENCH" run -q --iters "$it" -o "$d" "$@" > /dev/null 2>&1
	[ "$?" -le 1 ] || { echo "bench-compare: moebench run $* failed" >&2; return 1; }
	ls -t "$d"/*.json | head -n 1
}

# pairs NAME ITERS BASE_ENV NEW_ENV COMPARE_OPTS RUN_ARGS...: PAIRS
# comparisons, each of two fresh runs, one line per pair in $W/NAME.txt:
# compare's exit code, metrics flagged REGRESSION, the largest |time
# change| in %, the smallest p
pairs() {
	name=$1 its=$2 benv=$3 nenv=$4 copts=$5
	shift 5
	: > "$W/$name.txt"
	i=1
	while [ "$i" -le "$PAIRS" ]; do
		b=$(run "$W/$name/$i/base" "$its" "$benv" "$@") || exit 1
		n=$(run "$W/$name/$i/new" "$its" "$nenv" "$@") || exit 1
		# shellcheck disable=SC2086 # COMPARE_OPTS is a list of options
		"$MOEBENCH" compare $copts -q --markdown "$W/$name/$i/cmp.md" "$b" "$n" > /dev/null 2>&1
		rc=$?
		[ "$rc" -le 1 ] || { echo "bench-compare: compare failed ($rc)" >&2; exit 1; }
		awk -F'|' -v rc="$rc" '
			$3 == " time p50 " {
				c = $6; gsub(/[ +%]/, "", c); c = c < 0 ? -c : c; if (c > maxc) maxc = c
				p = $8 + 0; if (minp == "" || p < minp) minp = p }
			/\*\*REGRESSION\*\*/ { reg++ }
			END { printf "%d %d %.2f %.3g\n", rc, reg, maxc, minp }' \
			"$W/$name/$i/cmp.md" >> "$W/$name.txt"
		i=$((i + 1))
	done
}

# summary NAME WHAT TARGET: one table row; TARGET "none" (no pair may
# regress) or "all" (every pair must)
summary() {
	awk -v name="$2" -v target="$3" '
		{ n++; flagged += ($1 == 1); m += $2; if ($3 > maxc) maxc = $3
		  if (minp == "" || $4 < minp) minp = $4 }
		END {
			ok = target == "none" ? flagged == 0 : flagged == n
			printf "| %s | %d | %d (%d metrics) | %.2f%% | %.3g | %s: %s |\n", name, n,
				flagged, m, maxc, minp, target == "none" ? "0 flagged" : "all flagged",
				ok ? "pass" : "FAIL"
			exit ok ? 0 : 1 }' "$W/$1.txt"
}

echo "bench-compare: $PAIRS pairs of quick CPU runs (false alarms)" >&2
pairs cpu_same "$ITERS" "" "" "" -b cpu --preset quick
echo "bench-compare: $PAIRS pairs of one-thread sgemm runs (false alarms)" >&2
one="OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1"
pairs cpu_gemm1 "$ITERS" "$one" "$one" "" -b cpu -s gemm m=64 n=64 k=64

# Does the null backend honour the delay? 20 ms an iteration must take >= 19 ms.
probe=$(run "$W/probe" 3 "MOEBENCH_NULL_DELAY_US=20000" -b null -s gemm --warmup 0) || exit 1
p50=$("$JSONQ" "$probe" results.0.stats_s.p50 2>/dev/null || echo 0)
delay_ok=$(awk -v p="$p50" 'BEGIN { print (p >= 0.019) }')
if [ "$delay_ok" = 1 ]; then
	echo "bench-compare: $PAIRS pairs of null runs, $DELAY_US us against $SLOW_US us," \
	     "then against $DELAY_US us, at $ITERS and $((3 * ITERS)) iterations" >&2
	base="MOEBENCH_NULL_DELAY_US=$DELAY_US" slow="MOEBENCH_NULL_DELAY_US=$SLOW_US"
	pairs null_10pct "$ITERS" "$base" "$slow" --include-invalid -b null -s gemm
	pairs null_same "$ITERS" "$base" "$base" --include-invalid -b null -s gemm
	pairs null_10pct_x3 "$((3 * ITERS))" "$base" "$slow" --include-invalid -b null -s gemm
	pairs null_same_x3 "$((3 * ITERS))" "$base" "$base" --include-invalid -b null -s gemm
else
	echo "bench-compare: skipped the detection rate: the null backend ignores" \
	     "MOEBENCH_NULL_DELAY_US (a 20 ms delay gave p50 $p50 s)" >&2
fi

LOAD1=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
{
	echo "# moebench compare: false alarms and detection"
	echo
	echo "Measured $(date -u +%Y-%m-%dT%H:%M:%SZ) on $("$JSONQ" "$probe" system.cpu_model)" \
	     "($(nproc 2>/dev/null || echo '?') CPUs; load average $LOAD0 at the start," \
	     "$LOAD1 at the end), $ITERS iterations a run unless said, alpha 0.05, threshold 5%."
	echo "Each comparison is of two fresh runs. \"largest |change|\" is the largest"
	echo "Hodges-Lehmann time change of any case over all pairs; \"smallest p\" the smallest"
	echo "Mann-Whitney p. Per-pair lines: bench/compare/*.txt; each comparison's summary:"
	echo "bench/compare/<name>/<pair>/cmp.md."
	echo
	echo "| measurement | comparisons | with a regression | largest \\|change\\| | smallest p | target |"
	echo "|---|---:|---:|---:|---:|---|"
} > "$OUT/bench-compare.md"
status=0
row() { summary "$@" >> "$OUT/bench-compare.md" || status=1; }
row cpu_same "false alarms: quick preset, CPU, same config" none
row cpu_gemm1 "false alarms: sgemm 64^3, CPU, 1 thread, same config" none
if [ "$delay_ok" = 1 ]; then
	row null_10pct "detection: null gemm, 10% slower ($DELAY_US vs $SLOW_US us)" all
	row null_same "false alarms: null gemm, same delay ($DELAY_US us)" none
	row null_10pct_x3 "detection, as above, $((3 * ITERS)) iterations a run" all
	row null_same_x3 "false alarms, as above, $((3 * ITERS)) iterations a run" none
else
	echo "| detection | - | - | - | - | skipped: the null backend ignores MOEBENCH_NULL_DELAY_US |" \
		>> "$OUT/bench-compare.md"
fi
cat "$OUT/bench-compare.md"
exit $status
