# End to end: gmm on the CPU writes a valid, complete, checked result.
. tests/e2e/lib.inc

$MOEBENCH run -b cpu -s gmm --preset quick --iters 5 --warmup 1 -o "$TMP/r" > "$TMP/out" 2>&1
expect_eq "exit code" "$?" 0
f=$(newest "$TMP/r")
expect_eq "schema" "$(q "$f" schema)" "moebench.result/1"
expect_eq "run status" "$(q "$f" status)" complete
expect_eq "one case" "$(q "$f" results.#)" 1
expect_eq "case status" "$(q "$f" results.0.status)" ok
expect_eq "samples = --iters" "$(q "$f" results.0.samples_s.#)" 5
expect_eq "stats n" "$(q "$f" results.0.stats_s.n)" 5
expect_eq "check passed" "$(q "$f" results.0.check.passed)" true
# No CPU has a published peak, so MFU is null with a reason, never a guess.
expect_eq "cpu mfu null" "$(q "$f" results.0.metrics.mfu_pct)" null
expect_eq "cpu peak null" "$(q "$f" results.0.metrics.peak)" null
expect_eq "cpu mfu reason" "$(q "$f" results.0.metrics.mfu_reason | grep -c 'published peak for a CPU')" 1
expect_eq "preset recorded" "$(q "$f" config.size)" quick
expect_eq "params from preset" "$(q "$f" results.0.params_source.hidden)" preset
expect_eq "git commit recorded" "$(q "$f" build.git_commit | grep -c .)" 1
expect_eq "no temp files left" "$(ls "$TMP/r" | grep -c tmp)" 0
grep -q "gmm" "$TMP/out" && pass "table printed" || fail "no table on stdout"

# A deliberately broken op gives invalid and exit 1; the file stays complete.
MOEBENCH_FAULT=gmm $MOEBENCH run -b cpu -s gmm --preset quick --iters 2 -o "$TMP/f" > /dev/null 2>&1
expect_eq "broken op exit" "$?" 1
f=$(newest "$TMP/f")
expect_eq "broken op status" "$(q "$f" results.0.status)" invalid
expect_eq "broken op check" "$(q "$f" results.0.check.passed)" false
expect_eq "fault recorded" "$(q "$f" devices.0.fault_injected)" gmm
expect_eq "file still complete" "$(q "$f" status)" complete

# A sweep expands into cases, each checked.
$MOEBENCH run -b cpu -s gmm --preset quick --iters 2 -o "$TMP/s" tokens=64..256*2 top_k=1,2 > /dev/null 2>&1
expect_eq "sweep exit" "$?" 0
f=$(newest "$TMP/s")
expect_eq "sweep cases" "$(q "$f" results.#)" 6
expect_eq "sweep value" "$(q "$f" results.5.params.tokens)" 256
expect_eq "sweep source" "$(q "$f" results.5.params_source.tokens)" user

# The null backend runs the harness; its cases can never pass as valid.
$MOEBENCH run -b null -s gmm,gemm --iters 3 -o "$TMP/n" > /dev/null 2>&1
expect_eq "null exit" "$?" 1
f=$(newest "$TMP/n")
expect_eq "null case invalid" "$(q "$f" results.0.status)" invalid
expect_eq "null samples" "$(q "$f" results.1.samples_s.#)" 3

# Two runs never share a file.
$MOEBENCH run -b cpu -s gemm --iters 1 -o "$TMP/two" -q > /dev/null 2>&1
$MOEBENCH run -b cpu -s gemm --iters 1 -o "$TMP/two" -q > /dev/null 2>&1
expect_eq "two files" "$(ls "$TMP/two" | wc -l | tr -d ' ')" 2

# report reads result files back.
$MOEBENCH report "$(newest "$TMP/r")" -o "$TMP/rep" > /dev/null
expect_eq "report exit" "$?" 0
grep -q "| gmm |" "$TMP/rep/report.md" && pass "report table" || fail "report has no gmm row"

# A stranger's file with the right schema but wrong types, huge numbers and
# table-breaking strings is reported, not crashed on.
cat > "$TMP/hostile.json" <<'JSON'
{"schema": "moebench.result/1", "run_id": "a|b\nc", "status": 7, "system": [],
 "results": [{"suite": 5, "params": {"a": 1e300, "b": "p|q`x", "c": [1], "d": -1e20},
              "stats_s": "no", "metrics": {"tflops": "x", "busbw_gbps": 1e308}}, 7, null]}
JSON
$MOEBENCH report "$TMP/hostile.json" -o "$TMP/hrep" > /dev/null 2>&1
expect_eq "hostile report exit" "$?" 0
expect_eq "hostile report rows" "$(grep -c '^| - |' "$TMP/hrep/report.md")" 1
expect_eq "no pipe injected" "$(grep -c 'p|q' "$TMP/hrep/report.md")" 0
finish
