# End to end: bad input gets one line on stderr and exit 2, before any work.
. tests/e2e/lib.inc

# expect_usage NAME WORD ARGS...: exit 2, one stderr line containing WORD,
# and no result file written.
expect_usage() {
	name=$1 word=$2
	shift 2
	rm -rf "$TMP/o"
	$MOEBENCH "$@" > "$TMP/stdout" 2> "$TMP/stderr"
	rc=$?
	expect_eq "$name: exit" "$rc" 2
	expect_eq "$name: one line" "$(wc -l < "$TMP/stderr" | tr -d ' ')" 1
	grep -q -- "$word" "$TMP/stderr" && pass "$name: names $word" ||
		fail "$name: stderr '$(cat "$TMP/stderr")' lacks '$word'"
	[ -z "$(ls "$TMP/o" 2>/dev/null)" ] && pass "$name: no file" || fail "$name: wrote a file"
}

expect_usage "zero tokens" "1..16777216" run -s gmm -o "$TMP/o" tokens=0
expect_usage "junk number" "tokens" run -s gmm -o "$TMP/o" tokens=12abc
expect_usage "huge number" "tokens" run -s gmm -o "$TMP/o" tokens=99999999999999999999
expect_usage "bad enum" "fp32|bf16" run -s gmm -o "$TMP/o" dtype=fp8
expect_usage "top_k > experts" "top_k" run -s gmm -o "$TMP/o" experts=4 top_k=8
expect_usage "unknown key" "unknown parameter" run -s gmm -o "$TMP/o" nope=1
expect_usage "not key=value" "key=value" run -s gmm -o "$TMP/o" tokens
expect_usage "bad sweep" "sweep" run -s gmm -o "$TMP/o" tokens=1K..16*2
expect_usage "unknown suite" "unknown suite" run -s nope -o "$TMP/o"
expect_usage "unknown backend" "unknown backend" run -b nope -o "$TMP/o"
expect_usage "unknown model" "unknown model" run --model nope -o "$TMP/o"
expect_usage "bad preset" "quick, standard, full" run --preset huge -o "$TMP/o"
expect_usage "zero iters" "--iters" run --iters 0 -o "$TMP/o"
expect_usage "negative warmup" "--warmup" run --warmup -1 -o "$TMP/o"
expect_usage "bad seed" "--seed" run --seed 1x -o "$TMP/o"
expect_usage "unknown option" "unknown option" run --frobnicate -o "$TMP/o"
expect_usage "unknown command" "unknown command" frobnicate
expect_usage "unwritable output" "output directory" run -s gemm -o /proc/moebench/o
expect_usage "report junk file" "not a JSON object" report /etc/hostname -o "$TMP/o"
expect_usage "report no file" "cannot open" report "$TMP/none.json" -o "$TMP/o"

# Options and key=value parameters may be mixed in any order.
$MOEBENCH run -s gemm m=64 -o "$TMP/mix" --iters 1 n=32 -q > /dev/null 2>&1
expect_eq "mixed order exit" "$?" 0
expect_eq "mixed order n" "$(q "$(newest "$TMP/mix")" results.0.params.n)" 32
expect_eq "mixed order iters" "$(q "$(newest "$TMP/mix")" config.iters)" 1

for cmd in list info run report; do
	$MOEBENCH $cmd --help > "$TMP/help" 2>&1
	expect_eq "$cmd --help exit" "$?" 0
	grep -q "usage: moebench $cmd" "$TMP/help" && pass "$cmd --help text" || fail "$cmd --help"
done
$MOEBENCH list > "$TMP/list"
expect_eq "list exit" "$?" 0
grep -q "deepseek-v3" "$TMP/list" && grep -q "^  cpu" "$TMP/list" && pass "list content" ||
	fail "list lacks models or backends"
$MOEBENCH info -o "$TMP/info.json"
expect_eq "info exit" "$?" 0
[ "$(q "$TMP/info.json" system.cores)" -ge 1 ] 2>/dev/null && pass "info cores" || fail "info cores"
finish
