# End to end: `moebench check` re-derives real runs (exit 0); a copy edited
# by hand is caught at the field that was edited (exit 1, the line names
# it); a file that is not a moebench result, or not JSON, or cut short, is
# one line on stderr naming it (exit 2).
. tests/e2e/lib.inc

# scale IN OUT WHAT FACTOR: a copy of IN with the first case edited, the
# way a hand would edit the pretty-printed file: WHAT is "samples" (every
# sample), "both" (the samples and, consistently, their statistics) or a
# key ("tflops", "flops", "comm_bytes": its first number after "results").
scale() {
	awk -v what="$3" -v f="$4" '
	function scaled(line,   num, post) {	# the number that ends line
		if (!match(line, /-?[0-9][0-9.eE+-]*,?$/))
			return line
		num = substr(line, RSTART, RLENGTH)
		post = num ~ /,$/ ? "," : ""
		sub(/,$/, "", num)
		return substr(line, 1, RSTART - 1) sprintf("%.17g", num * f) post
	}
	function scaled_list(line,   head, tail, n, i, x, out) {	# [a, b, ...] on one line
		head = substr(line, 1, index(line, "["))
		tail = substr(line, index(line, "]"))
		n = split(substr(line, length(head) + 1, length(line) - length(head) - length(tail)), x, ", ")
		for (i = 1; i <= n; i++)
			out = out (i > 1 ? ", " : "") sprintf("%.17g", x[i] * f)
		return head out tail
	}
	/^\t"results":/ { inres = 1 }
	inres && !done && what != "samples" && what != "both" && index($0, "\"" what "\":\t") {
		$0 = scaled($0); done = 1
	}
	inres && !sdone && (what == "samples" || what == "both") && /"samples_s":/ {
		$0 = scaled_list($0); sdone = 1
	}
	what == "both" && sdone && !tdone && /"stats_s":/ { instats = 1 }
	instats && /^\t\t\t\}/ { instats = 0; tdone = 1 }
	instats && /"(min|p50|p95|p99|max|mean|stdev)":/ { $0 = scaled($0) }
	instats && /"median_ci95":/ { $0 = scaled_list($0) }
	{ print }' "$1" > "$2"
}

# check_ok FILE WHAT: exit 0 and a summary saying so
check_ok() {
	$MOEBENCH check "$1" > "$TMP/out" 2> "$TMP/err"
	expect_eq "$2: exit" "$?" 0
	expect_eq "$2: summary" "$(grep -c ': ok: ' "$TMP/out")" 1
	expect_eq "$2: no mismatch lines" "$(grep -c ': results\[' "$TMP/out")" 0
}

# check_caught FILE WHAT FIELD: exit 1 and a line naming FIELD
check_caught() {
	$MOEBENCH check "$1" > "$TMP/out" 2> "$TMP/err"
	expect_eq "$2: exit" "$?" 1
	expect_eq "$2: names $3" "$(grep -cF "$1: $3: file " "$TMP/out")" 1
	expect_eq "$2: summary" "$(grep -c ': MISMATCH: ' "$TMP/out")" 1
}

# check_refused FILE WHAT: exit 2 and one line on stderr naming the file
check_refused() {
	$MOEBENCH check "$1" > "$TMP/out" 2> "$TMP/err"
	expect_eq "$2: exit" "$?" 2
	expect_eq "$2: one line" "$(wc -l < "$TMP/err" | tr -d ' ')" 1
	expect_eq "$2: names the file" "$(grep -cF "$1" "$TMP/err")" 1
}

# ---- real runs re-derive exactly ----
$MOEBENCH run -b cpu --preset quick --iters 4 --warmup 1 -o "$TMP/q" -q > /dev/null 2>&1
expect_eq "quick workload ran" "$?" 0
quick=$(newest "$TMP/q")
expect_eq "gmm with ep > 1 in it" "$(q "$quick" results.1.params.ep)" 4
check_ok "$quick" "quick workload"
$MOEBENCH run -b null -s gmm,gemm --iters 3 -o "$TMP/n" -q > /dev/null 2>&1
null=$(newest "$TMP/n")
expect_eq "null backend: invalid" "$(q "$null" results.0.status)" invalid
check_ok "$null" "null backend"
$MOEBENCH run -s alltoall --iters 3 -o "$TMP/u" -q mode=uniform bytes=64K > /dev/null 2>&1
check_ok "$(newest "$TMP/u")" "alltoall uniform"

# ---- hand edits are caught where they were made ----
orig=$(q "$quick" results.0.metrics.tflops)
scale "$quick" "$TMP/tflops.json" tflops 2
expect_eq "tflops edited" "$(q "$TMP/tflops.json" results.0.metrics.tflops | awk -v o="$orig" '{ print ($1 == 2 * o) }')" 1
check_caught "$TMP/tflops.json" "tflops doubled" "results[0].metrics.tflops"
expect_eq "tflops doubled: only that field" "$(grep -c ': results\[' "$TMP/out")" 1

scale "$quick" "$TMP/flops.json" flops 3
check_caught "$TMP/flops.json" "cost.flops tripled" "results[0].cost.flops"

scale "$quick" "$TMP/samples.json" samples 0.5
expect_eq "samples edited" "$(q "$TMP/samples.json" results.0.samples_s.0 | awk -v o="$(q "$quick" results.0.samples_s.0)" '{ print ($1 * 2 == o) }')" 1
check_caught "$TMP/samples.json" "samples halved" "results[0].stats_s.p50"
expect_eq "samples halved: the metrics follow" "$(grep -cF 'results[0].metrics.tflops: ' "$TMP/out")" 1

scale "$quick" "$TMP/both.json" both 0.5
expect_eq "stats edited too" "$(q "$TMP/both.json" results.0.stats_s.p50 | awk -v o="$(q "$quick" results.0.stats_s.p50)" '{ print ($1 * 2 == o) }')" 1
check_caught "$TMP/both.json" "samples and stats halved" "results[0].metrics.tflops"
expect_eq "samples and stats halved: stats agree" "$(grep -c 'stats_s' "$TMP/out")" 0

# a case that failed its check, edited to look passed
MOEBENCH_FAULT=gmm $MOEBENCH run -b cpu -s gmm --model tiny --iters 2 -o "$TMP/f" -q > /dev/null 2>&1
fault=$(newest "$TMP/f")
expect_eq "fault: invalid" "$(q "$fault" results.0.status)" invalid
sed 's/^\(\t\t\t"status":\t\)"invalid"/\1"ok"/' "$fault" > "$TMP/status.json"
$MOEBENCH check "$TMP/status.json" > "$TMP/out" 2>&1
expect_eq "invalid edited to ok: exit" "$?" 1
expect_eq "invalid edited to ok: named" "$(grep -cF 'results[0].status: ok, but check.passed is not true' "$TMP/out")" 1

# ---- files that are not results ----
head -c 2000 "$quick" > "$TMP/truncated.json"
check_refused "$TMP/truncated.json" "truncated file"
printf '{"schema": "other-tool.result/2", "results": []}\n' > "$TMP/other.json"
check_refused "$TMP/other.json" "another program's schema"
printf 'moebench, but not JSON\n' > "$TMP/text.json"
check_refused "$TMP/text.json" "not JSON"
check_refused "$TMP/missing.json" "missing file"
# several files: the worst outcome decides, every file is still checked
$MOEBENCH check "$quick" "$TMP/tflops.json" > "$TMP/out" 2>&1
expect_eq "good + tampered: exit" "$?" 1
expect_eq "good + tampered: both reported" "$(grep -c -e ': ok: ' -e ': MISMATCH: ' "$TMP/out")" 2
$MOEBENCH check "$TMP/other.json" "$TMP/tflops.json" > "$TMP/out" 2> "$TMP/err"
expect_eq "refused + tampered: exit" "$?" 2
expect_eq "refused + tampered: still checked" "$(grep -c ': MISMATCH: ' "$TMP/out")" 1
$MOEBENCH check > /dev/null 2>&1
expect_eq "no file: usage" "$?" 2

# ---- several ranks: per-rank medians, alltoall's routing recomputed ----
if command -v mpirun > /dev/null 2>&1; then
	[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
	env ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" mpirun --oversubscribe --mca btl self,tcp \
		-np 2 $MOEBENCH run -s alltoall,train_step --preset quick --model tiny --iters 3 \
		-o "$TMP/m" -q > /dev/null 2>&1
	expect_eq "mpirun -np 2 ran" "$?" 0
	mpi=$(newest "$TMP/m")
	expect_eq "two ranks" "$(q "$mpi" world.size)" 2
	check_ok "$mpi" "two ranks"
	scale "$mpi" "$TMP/comm.json" comm_bytes 1.5
	check_caught "$TMP/comm.json" "comm_bytes edited" "results[0].cost.comm_bytes"
else
	echo "skip: mpirun not found (the multi-rank checks)"
fi

finish
