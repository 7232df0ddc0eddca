# End to end: `moebench micro` runs Google Benchmark over checked kernels,
# keeps Google Benchmark's flags working, writes a valid calibration file
# with the measured ceilings, refuses bad input with one line, catches a
# wrong result, and runs alltoall in lockstep under mpirun.
# Writes the backend/OpenBLAS sgemm ratio to MICRO_RATIO_FILE (default: next
# to the binary) without judging it: ci/bench-micro.sh does that.
. tests/e2e/lib.inc

FAST=--benchmark_min_time=0.02
CEIL='--benchmark_filter=^(gemm/square|sgemm/openblas|copy)/'
RATIO_FILE=${MICRO_RATIO_FILE:-$(dirname "$MOEBENCH")/micro-ratio.txt}

# The ceilings, from one run: a valid file with numbers, or nulls with reasons.
$MOEBENCH micro -o "$TMP/cal.json" "$CEIL" $FAST > "$TMP/out" 2> "$TMP/err"
expect_eq "ceiling run exit" "$?" 0
f=$TMP/cal.json
expect_eq "schema" "$(q "$f" schema)" "moebench.calibration/1"
expect_eq "status" "$(q "$f" status)" ok
expect_eq "backend" "$(q "$f" backend)" cpu
expect_eq "host" "$(q "$f" host)" "$(hostname)"
expect_eq "argv recorded" "$(q "$f" argv.1)" micro
expect_eq "time is UTC" "$(q "$f" time | grep -c '^....-..-..T..:..:..Z$')" 1
pos() { awk -v v="$1" 'BEGIN { exit !(v + 0 > 0) }' && echo yes || echo "no ($1)"; }
expect_eq "matmul fp32 ceiling" "$(pos "$(q "$f" ceilings.matmul_tflops.fp32)")" yes
expect_eq "mem ceiling" "$(pos "$(q "$f" ceilings.mem_gbps)")" yes
expect_eq "openblas sgemm" "$(pos "$(q "$f" ceilings.openblas_sgemm_tflops)")" yes
bf=$(q "$f" ceilings.matmul_tflops.bf16)
if [ "$bf" = null ]; then
	expect_eq "bf16 null has a reason" "$(q "$f" ceilings.matmul_tflops.bf16_reason | grep -c .)" 1
else
	expect_eq "matmul bf16 ceiling" "$(pos "$bf")" yes
fi
last=$(($(q "$f" benchmarks.#) - 1))
expect_eq "copy last" "$(q "$f" benchmarks.$last.name)" copy/256MiB
expect_eq "copy counts read + write" "$(q "$f" benchmarks.$last.bytes_per_iteration)" 536870912
expect_eq "every run valid" "$(grep -c '"valid":	false' "$f")" 0
expect_eq "runs carry rates" "$(pos "$(q "$f" benchmarks.0.flops_per_s)")" yes
expect_eq "cpu peak is computed" "$(q "$f" computed_peak.kind)" computed
expect_eq "no temp files left" "$(ls "$TMP" | grep -c tmp)" 0
grep -q "^gemm/square/2048/fp32/manual_time" "$TMP/out" && pass "gbench table on stdout" ||
	fail "no gbench table on stdout"
grep -q "ceilings of" "$TMP/out" && pass "summary on stdout" || fail "no summary"
expect_eq "stderr empty" "$(wc -c < "$TMP/err" | tr -d ' ')" 0
ratio=$(awk -v a="$(q "$f" ceilings.matmul_tflops.fp32)" \
	-v b="$(q "$f" ceilings.openblas_sgemm_tflops)" 'BEGIN { printf "%.4f", a / b }')
echo "$ratio" > "$RATIO_FILE"
echo "info: backend fp32 matmul / direct OpenBLAS sgemm = $ratio (in $RATIO_FILE; not judged here)"

# Google Benchmark's own flags: json on stdout (nothing else there),
# --benchmark_out, repetitions with aggregates (the file's ceiling statistic).
$MOEBENCH micro '--benchmark_filter=^gemm/down/.*/fp32' $FAST --benchmark_format=json \
	--benchmark_repetitions=3 "--benchmark_out=$TMP/gb.json" -o "$TMP/rep.json" > "$TMP/stdout.json"
expect_eq "json format exit" "$?" 0
expect_eq "stdout is gbench json" "$(q "$TMP/stdout.json" context.executable)" "moebench micro"
expect_eq "json has reps + aggregates" "$(q "$TMP/stdout.json" benchmarks.#)" 7
expect_eq "benchmark_out written" "$(q "$TMP/gb.json" benchmarks.4.aggregate_name)" median
expect_eq "file: 7 runs" "$(q "$TMP/rep.json" benchmarks.#)" 7
expect_eq "file: median aggregate" "$(q "$TMP/rep.json" benchmarks.4.aggregate)" median
expect_eq "file: repetition index" "$(q "$TMP/rep.json" benchmarks.2.repetition)" 2
expect_eq "file: cv aggregate" "$(q "$TMP/rep.json" benchmarks.6.aggregate)" cv
expect_eq "file: cv has no time" "$(q "$TMP/rep.json" benchmarks.6.real_time_s)" null
expect_eq "file: cv value" "$(q "$TMP/rep.json" benchmarks.6.cv | grep -c '^[0-9]')" 1
expect_eq "file: not a ceiling run" \
	"$(q "$TMP/rep.json" ceilings.matmul_tflops.fp32_reason | grep -c 'not run')" 1

# run finds the newest calibration for this host in its output directory and
# gives MFU against the measured ceiling beside the computed CPU peak; a
# --calibration it cannot use is one line, exit 2
mkdir -p "$TMP/runs" && cp "$f" "$TMP/runs/cal.json"
$MOEBENCH run -b cpu -s gemm --iters 2 -o "$TMP/runs" -q > /dev/null 2>&1
expect_eq "run with a calibration: exit code" "$?" 0
r=$(ls -t "$TMP"/runs/2*.json | head -n 1)
expect_eq "run: calibration used" "$(q "$r" config.calibration)" "$TMP/runs/cal.json"
expect_eq "run: measured peak kind" "$(q "$r" results.0.metrics.measured_peak.kind)" measured
expect_eq "run: measured peak = the ceiling" "$(q "$r" results.0.metrics.measured_peak.tflops)" \
	"$(q "$f" ceilings.matmul_tflops.fp32)"
[ "$(q "$r" results.0.metrics.mfu_measured_pct)" != null ] && pass "run: MFU against the measured peak" ||
	fail "run: $(q "$r" results.0.metrics.mfu_measured_reason)"
expect_eq "run: computed peak kind" "$(q "$r" results.0.metrics.computed_peak.kind)" computed
$MOEBENCH run -b cpu -s gemm --iters 2 -o "$TMP/runs" --calibration "$TMP/out" > /dev/null 2> "$TMP/stderr"
expect_eq "run with a bad --calibration: exit code" "$?" 2
expect_eq "run with a bad --calibration: one line" "$(wc -l < "$TMP/stderr")" 1

$MOEBENCH micro --benchmark_list_tests -o "$TMP/list.json" > "$TMP/list"
expect_eq "list exit" "$?" 0
grep -q "^copy/256MiB/manual_time" "$TMP/list" && pass "list names" || fail "list names"
[ ! -e "$TMP/list.json" ] && pass "list writes no file" || fail "list wrote a file"

# Bad input: one line on stderr, exit 2, no file.
expect_usage() {
	name=$1 word=$2
	shift 2
	$MOEBENCH micro -o "$TMP/bad.json" "$@" > /dev/null 2> "$TMP/stderr"
	expect_eq "$name: exit" "$?" 2
	expect_eq "$name: one line" "$(wc -l < "$TMP/stderr" | tr -d ' ')" 1
	grep -q -- "$word" "$TMP/stderr" && pass "$name: names $word" ||
		fail "$name: stderr '$(cat "$TMP/stderr")' lacks '$word'"
	[ ! -e "$TMP/bad.json" ] && pass "$name: no file" || fail "$name: wrote a file"
}
expect_usage "bad gbench format" "console, json or csv" --benchmark_format=xml
expect_usage "bad min_time" "benchmark_min_time" --benchmark_min_time=fast
expect_usage "unknown gbench flag" "unknown option" --benchmark_frobnicate=1
expect_usage "bad regex" "regular expression" "--benchmark_filter=("
expect_usage "filter matches nothing" "nomatch" --benchmark_filter=nomatch
expect_usage "bad dtype" "fp32|bf16|all" --dtype fp8
expect_usage "unknown option" "unknown option" --frobnicate
expect_usage "missing value" "missing value" --model
expect_usage "unknown model" "unknown model" --model nope
expect_usage "unknown backend" "unknown backend" -b nope
rm -f "$TMP/bad.json"
$MOEBENCH micro -o /proc/nonexistent/cal.json > /dev/null 2> "$TMP/stderr"
expect_eq "unwritable -o: exit" "$?" 2
expect_eq "unwritable -o: one line" "$(grep -c 'cannot write' "$TMP/stderr")" 1
$MOEBENCH micro --help > "$TMP/help"
expect_eq "help exit" "$?" 0
grep -q "usage: moebench micro" "$TMP/help" && pass "help text" || fail "help text"

# Fast and wrong is invalid: a corrupted GEMM, and the null device.
MOEBENCH_FAULT=gemm $MOEBENCH micro '--benchmark_filter=^gemm/(square|down)/.*fp32' $FAST \
	-o "$TMP/fault.json" > /dev/null 2>&1
expect_eq "fault exit" "$?" 1
f=$TMP/fault.json
expect_eq "fault status" "$(q "$f" status)" invalid
expect_eq "fault run invalid" "$(q "$f" benchmarks.0.valid)" false
expect_eq "fault message" "$(q "$f" benchmarks.0.error | grep -c '^invalid: ')" 1
expect_eq "fault ceiling null" "$(q "$f" ceilings.matmul_tflops.fp32)" null
expect_eq "fault ceiling reason" "$(q "$f" ceilings.matmul_tflops.fp32_reason | grep -c invalid)" 1
$MOEBENCH micro -b null '--benchmark_filter=^(copy|permute)/' $FAST -o "$TMP/null.json" \
	> /dev/null 2>&1
expect_eq "null exit" "$?" 1
expect_eq "null copy invalid" "$(q "$TMP/null.json" ceilings.mem_gbps)" null
expect_eq "null sgemm skipped" "$(q "$TMP/null.json" ceilings.openblas_sgemm_tflops_reason | \
	grep -c 'skipped: the device is not the host CPU')" 1

# Collectives in lockstep: fixed iterations on every rank, rank 0 reports.
if command -v mpirun > /dev/null 2>&1; then
	[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
	MPIRUN="env ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 mpirun --oversubscribe --mca btl self,tcp"
	$MPIRUN -np 2 $MOEBENCH micro --benchmark_filter=^alltoall/ -o "$TMP/a2a.json" \
		--benchmark_color=false \
		"--benchmark_out=$TMP/a2a_gb.json" > "$TMP/a2a.out" 2>&1
	expect_eq "mpi exit" "$?" 0
	f=$TMP/a2a.json
	expect_eq "mpi world size" "$(q "$f" config.world_size)" 2
	expect_eq "mpi runs" "$(q "$f" benchmarks.#)" 2
	expect_eq "mpi fixed iterations" "$(q "$f" benchmarks.1.iterations)" 20
	expect_eq "mpi run valid" "$(q "$f" benchmarks.1.valid)" true
	expect_eq "mpi busbw" "$(pos "$(q "$f" benchmarks.1.busbw_bytes_per_s)")" yes
	expect_eq "mpi one report" "$(grep -c '^alltoall/16MiB/iterations:20' "$TMP/a2a.out")" 1
	expect_eq "mpi gbench out" "$(q "$TMP/a2a_gb.json" benchmarks.#)" 2
	MOEBENCH_FAULT=alltoallv $MPIRUN -np 2 $MOEBENCH micro --benchmark_filter=^alltoall/1MiB \
		-o "$TMP/a2af.json" > /dev/null 2>&1
	expect_eq "mpi fault exit" "$?" 1
	expect_eq "mpi fault invalid" "$(q "$TMP/a2af.json" benchmarks.0.valid)" false
	$MPIRUN -np 2 $MOEBENCH micro --benchmark_enable_random_interleaving > /dev/null \
		2> "$TMP/stderr"
	expect_eq "mpi interleaving refused" "$?" 2
	expect_eq "mpi refusal: one line" "$(grep -c 'cannot be used with 2 ranks' "$TMP/stderr")" 1
else
	echo "skip: mpirun not found"
fi
finish
