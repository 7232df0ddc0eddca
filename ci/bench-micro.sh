#!/bin/sh
# bench-micro.sh: is the measured matmul ceiling what the machine's BLAS
# gives? The fp32 square GEMM (2048^3) through the cpu backend against
# cblas_sgemm of the same shape called directly, timed in the same
# `moebench micro` run (shared machines are noisy: only ratios within one
# run are compared). Each round is one run with REPETITIONS short (0.1 s)
# repetitions of each benchmark, randomly interleaved so that a burst of
# load from another process falls on both alike; its ratio is of the two
# medians (the calibration file's ceilings), and the verdict uses the median
# of the rounds' ratios.
#   target: backend / direct within 10% (0.90 .. 1.10)
#
# Writes bench/bench-micro.md; exits 1 if the target is missed or a run
# fails (a wrong result is one).
# Usage: ci/bench-micro.sh [ROUNDS] [REPETITIONS]   (MOEBENCH, JSONQ override the binaries)
set -u
cd "$(dirname "$0")/.."
MOEBENCH=${MOEBENCH:-./build/moebench}
JSONQ=${JSONQ:-./build/tests/jsonq}
ROUNDS=${1:-3}
REPS=${2:-15}
OUT=bench
mkdir -p "$OUT/results"
q() { "$JSONQ" "$1" "$2"; }

: > "$OUT/micro-rounds.txt"
r=1
while [ $r -le "$ROUNDS" ]; do
	f=$OUT/results/micro-$r.json
	$MOEBENCH micro -b cpu --dtype fp32 -o "$f" --benchmark_format=json \
		'--benchmark_filter=^(gemm/square|sgemm/openblas)/' \
		--benchmark_repetitions="$REPS" --benchmark_enable_random_interleaving=true \
		--benchmark_min_time=0.1 \
		> /dev/null ||
		{ echo "bench: moebench micro failed (round $r)" >&2; exit 1; }
	echo "$r $(q "$f" ceilings.matmul_tflops.fp32) $(q "$f" ceilings.openblas_sgemm_tflops)" \
	     "$(q "$f" status)" >> "$OUT/micro-rounds.txt"
	r=$((r + 1))
done

awk -v cpu="$(q "$OUT/results/micro-1.json" device)" -v reps="$REPS" '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
BEGIN { allok = 1 }
{
	n++; ratio[n] = $2 / $3; allok = allok && $4 == "ok"
	line[n] = sprintf("| %d | %.1f | %.1f | %.1f%% | %s |", $1, $2 * 1000, $3 * 1000, 100 * ratio[n], $4)
}
END {
	m = median(ratio, n); ok = m >= 0.90 && m <= 1.10 && allok
	printf "# moebench micro: measured matmul ceiling vs OpenBLAS\n\n- machine: %s\n", cpu
	printf "- %d rounds; each is one run, each benchmark %d repetitions, medians compared\n\n", n, reps
	printf "| round | backend gemm 2048^3 GFLOP/s | cblas_sgemm 2048^3 GFLOP/s | ratio | checks |\n|---|---:|---:|---:|---|\n"
	for (i = 1; i <= n; i++) print line[i]
	printf "\n| check (median over rounds) | measured | target | verdict |\n|---|---:|---:|---|\n"
	printf "| backend fp32 matmul / direct sgemm | %.1f%% | 90%% .. 110%% | %s |\n", 100 * m, ok ? "pass" : "FAIL"
	printf "\nratio: %.4f\n", m
	exit ok ? 0 : 1
}' "$OUT/micro-rounds.txt" > "$OUT/bench-micro.md"
rc=$?
cat "$OUT/bench-micro.md"
exit $rc
