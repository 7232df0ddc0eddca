#!/bin/sh
# bench-cpu.sh: the CPU performance checks, as ratios measured in one run
# (shared machines are noisy; absolute times are not stable).
#
#   1. gmm forward+backward at the standard preset (deepseek-v3 shapes) vs one
#      OpenBLAS sgemm of the same total FLOPs, in the same moebench run:
#      >= 80% at skew 0, >= 65% at skew 1.2.
#   2. the runner's overhead per timed iteration: the median iteration of gmm
#      on the null backend (every launch returns at once): < 2 microseconds.
#
# Writes bench/bench-cpu.md and exits 1 if a target is missed.
# Usage: ci/bench-cpu.sh [ITERS]   (MOEBENCH, JSONQ override the binaries)
set -u
cd "$(dirname "$0")/.."
MOEBENCH=${MOEBENCH:-./build/moebench}
JSONQ=${JSONQ:-./build/tests/jsonq}
ITERS=${1:-3}
OUT=bench
mkdir -p "$OUT/results"
q() { "$JSONQ" "$1" "$2"; }

# gmm: 18 * pairs * hidden * ffn FLOPs with pairs = tokens * top_k.
# The sgemm with the same FLOPs: m = pairs, k = hidden, n = 9 * ffn.
TOKENS=1024 TOPK=2 HIDDEN=7168 FFN=2048
PAIRS=$((TOKENS * TOPK))
$MOEBENCH run -b cpu -s gemm,gmm --model deepseek-v3 --preset standard \
	--warmup 1 --iters "$ITERS" -o "$OUT/results" \
	m=$PAIRS k=$HIDDEN n=$((9 * FFN)) tokens=$TOKENS top_k=$TOPK skew=0,1.2 ||
	{ echo "bench: the cpu run failed" >&2; exit 1; }
f=$(ls -t "$OUT"/results/*.json | head -n 1)

$MOEBENCH run -b null -s gmm --preset quick --warmup 100 --iters 10000 -q \
	-o "$OUT/results" > /dev/null 2>&1
nf=$(ls -t "$OUT"/results/*.json | head -n 1)

awk -v g="$(q "$f" results.0.metrics.tflops)" \
    -v s0="$(q "$f" results.1.metrics.tflops)" -v s1="$(q "$f" results.2.metrics.tflops)" \
    -v gf="$(q "$f" results.0.cost.flops)" -v mf="$(q "$f" results.1.cost.flops)" \
    -v c0="$(q "$f" results.1.status)" -v c1="$(q "$f" results.2.status)" \
    -v imb="$(q "$f" results.2.info.imbalance)" \
    -v ov="$(q "$nf" results.0.stats_s.p50)" -v ovp99="$(q "$nf" results.0.stats_s.p99)" \
    -v file="$f" -v nfile="$nf" -v cpu="$(q "$f" system.cpu_model)" -v threads="$(q "$f" devices.0.threads)" '
function verdict(ok) { return ok ? "pass" : "FAIL" }
BEGIN {
	r0 = s0 / g; r1 = s1 / g; us = ov * 1e6
	ok = (r0 >= 0.80) && (r1 >= 0.65) && (us < 2) && c0 == "ok" && c1 == "ok" && gf == mf
	printf "# CPU benchmark checks\n\n"
	printf "- machine: %s, %d threads\n- result files: `%s`, `%s`\n\n", cpu, threads, file, nfile
	printf "| check | measured | target | verdict |\n|---|---:|---:|---|\n"
	printf "| sgemm m=2048 n=18432 k=7168 | %.1f GFLOP/s | - | - |\n", g * 1000
	printf "| gmm fwd+bwd, skew 0 (%s) | %.1f GFLOP/s = %.1f%% of sgemm | >= 80%% | %s |\n", c0, s0 * 1000, 100 * r0, verdict(r0 >= 0.80 && c0 == "ok")
	printf "| gmm fwd+bwd, skew 1.2 (%s, imbalance %.2f) | %.1f GFLOP/s = %.1f%% of sgemm | >= 65%% | %s |\n", c1, imb, s1 * 1000, 100 * r1, verdict(r1 >= 0.65 && c1 == "ok")
	printf "| runner overhead per timed iteration (null backend, p50; p99 %.3f us) | %.3f us | < 2 us | %s |\n", ovp99 * 1e6, us, verdict(us < 2)
	printf "| same FLOPs in gemm and gmm | %.6g vs %.6g | equal | %s |\n", gf, mf, verdict(gf == mf)
	exit ok ? 0 : 1
}' > "$OUT/bench-cpu.md"
rc=$?
cat "$OUT/bench-cpu.md"
exit $rc
