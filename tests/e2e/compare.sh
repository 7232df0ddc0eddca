# End to end: `moebench compare` on real runs, doctored copies, malformed
# and hostile files; its JUnit and Markdown files are checked for form.
. tests/e2e/lib.inc

# xml_ok FILE: well-formed XML (python3, else xmllint, else a rough grep)
xml_ok() {
	if command -v python3 > /dev/null 2>&1; then
		python3 -c 'import xml.dom.minidom,sys; xml.dom.minidom.parse(sys.argv[1])' "$1"
	elif command -v xmllint > /dev/null 2>&1; then
		xmllint --noout "$1"
	else
		head -n 1 "$1" | grep -q '^<?xml' && tail -n 1 "$1" | grep -q '^</testsuites>$'
	fi
}

# xml_count FILE TAG: how many TAG elements (parsed where python3 exists)
xml_count() {
	if command -v python3 > /dev/null 2>&1; then
		python3 -c 'import xml.dom.minidom,sys
print(len(xml.dom.minidom.parse(sys.argv[1]).getElementsByTagName(sys.argv[2])))' "$1" "$2"
	else
		grep -c "<$2[ >]" "$1"
	fi
}

# slower SRC DST FACTOR: a copy of a result file with every sample times FACTOR
# (cJSON writes each samples_s array on one line).
slower() {
	awk -v f="$3" '/"samples_s":/ {
		i = index($0, "["); j = index($0, "]")
		n = split(substr($0, i + 1, j - i - 1), v, ",")
		out = substr($0, 1, i)
		for (k = 1; k <= n; k++) out = out sprintf("%s%.17g", k > 1 ? ", " : "", v[k] * f)
		print out substr($0, j); next }
	{ print }' "$1" > "$2"
}

# expect_bad NAME WORD ARGS...: exit 2 and one line on stderr containing WORD
expect_bad() {
	name=$1 word=$2
	shift 2
	$MOEBENCH compare "$@" > "$TMP/stdout" 2> "$TMP/stderr"
	expect_eq "$name: exit" "$?" 2
	expect_eq "$name: one line" "$(wc -l < "$TMP/stderr" | tr -d ' ')" 1
	grep -q -- "$word" "$TMP/stderr" && pass "$name: names $word" ||
		fail "$name: stderr '$(cat "$TMP/stderr")' lacks '$word'"
}

# Two quick runs of the same config on the null backend: its cases are
# always invalid, so they are listed, not judged, and nothing fails.
$MOEBENCH run -b null -s gemm --preset quick -q -o "$TMP/n1" > /dev/null 2>&1
$MOEBENCH run -b null -s gemm --preset quick -q -o "$TMP/n2" > /dev/null 2>&1
n1=$(newest "$TMP/n1") n2=$(newest "$TMP/n2")
$MOEBENCH compare "$n1" "$n2" --junit "$TMP/n.xml" --markdown "$TMP/n.md" > "$TMP/out" 2>&1
expect_eq "null runs: exit" "$?" 0
grep -q "not ok: invalid in BASE, invalid in NEW" "$TMP/out" && pass "null runs: not judged" ||
	fail "null runs: case not listed as not ok"
xml_ok "$TMP/n.xml" && pass "null runs: junit well formed" || fail "null runs: junit malformed"
expect_eq "null runs: one testcase" "$(xml_count "$TMP/n.xml" testcase)" 1
expect_eq "null runs: skipped" "$(xml_count "$TMP/n.xml" skipped)" 1
# With --include-invalid the timings are judged too (the file as itself: p = 1).
$MOEBENCH compare --include-invalid "$n1" "$n1" > "$TMP/out" 2>&1
expect_eq "include-invalid: exit" "$?" 0
grep -q "(10 vs 10 samples" "$TMP/out" && pass "include-invalid: compared" ||
	fail "include-invalid: not compared"

# A real CPU run against a copy of itself 20% slower: a regression, named.
# One thread and a tiny matmul keep the samples tight on a busy machine.
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $MOEBENCH run -b cpu -s gemm --iters 200 --warmup 5 \
	-q -o "$TMP/c" m=64 n=64 k=64 > /dev/null 2>&1
expect_eq "cpu run" "$?" 0
c=$(newest "$TMP/c")
slower "$c" "$TMP/slow.json" 1.2
expect_eq "doctored samples" "$(awk -v a="$(q "$TMP/slow.json" results.0.samples_s.7)" \
	-v b="$(q "$c" results.0.samples_s.7)" 'BEGIN { print (a / b > 1.1999 && a / b < 1.2001) }')" 1
$MOEBENCH compare "$c" "$TMP/slow.json" --junit "$TMP/r.xml" --markdown "$TMP/r.md" > "$TMP/out" 2>&1
expect_eq "20% slower: exit" "$?" 1
grep -q "^gemm m=64 n=64 k=64 dtype=fp32" "$TMP/out" && pass "20% slower: case named" ||
	fail "20% slower: case not named"
grep -q "time p50 .*+20.0% .*REGRESSION" "$TMP/out" && pass "20% slower: +20.0%, regression" ||
	fail "20% slower: change or verdict"
xml_ok "$TMP/r.xml" && pass "20% slower: junit well formed" || fail "20% slower: junit malformed"
expect_eq "20% slower: one failure" "$(xml_count "$TMP/r.xml" failure)" 1
grep -q '<testcase classname="moebench.gemm" name="gemm m=64 n=64 k=64 dtype=fp32"' "$TMP/r.xml" &&
	pass "20% slower: junit names the case" || fail "20% slower: junit case name"
grep -q '^| gemm m=64 n=64 k=64 dtype=fp32 | time p50 |.*| \*\*REGRESSION\*\* |' "$TMP/r.md" &&
	pass "20% slower: markdown row" || fail "20% slower: markdown row"
expect_eq "no temp files left" "$(ls "$TMP" | grep -c '\.tmp\.')" 0
$MOEBENCH compare "$c" "$c" > /dev/null 2>&1
expect_eq "same file: exit" "$?" 0

# The threshold, on synthetic samples 1.000..1.019 ms: 3% slower is
# significant but under the default 5%, and over --max-regress 2.
synth() { # synth FILE FACTOR
	awk -v f="$2" 'BEGIN { printf "{\"schema\": \"moebench.result/1\", \"results\": ["
	printf "{\"suite\": \"gemm\", \"status\": \"ok\", \"params\": {\"m\": 1}, \"samples_s\": ["
	for (i = 0; i < 20; i++) printf "%s%.17g", i ? ", " : "", (0.001 + i * 1e-6) * f
	printf "]}]}\n" }' > "$1"
}
synth "$TMP/s1.json" 1
synth "$TMP/s3.json" 1.03
$MOEBENCH compare "$TMP/s1.json" "$TMP/s3.json" > "$TMP/out" 2>&1
expect_eq "3% slower: exit" "$?" 0
grep -q "time p50 .*+3.0% .* worse" "$TMP/out" && pass "3% slower: significant, not a regression" ||
	fail "3% slower: verdict"
$MOEBENCH compare --max-regress 2 "$TMP/s1.json" "$TMP/s3.json" > /dev/null 2>&1
expect_eq "3% slower, --max-regress 2: exit" "$?" 1
$MOEBENCH compare --max-regress 2 "$TMP/s1.json" "$TMP/s1.json" > "$TMP/out" 2>&1
expect_eq "identical: exit" "$?" 0
grep -q "time p50 .*+0.0% .* 1  same" "$TMP/out" && pass "identical: p = 1, same" ||
	fail "identical: verdict"

# A case that breaks in NEW is a failure.
sed 's/"status":	"ok"/"status":	"invalid"/' "$c" > "$TMP/broken.json"
$MOEBENCH compare "$c" "$TMP/broken.json" > "$TMP/out" 2>&1
expect_eq "ok -> invalid: exit" "$?" 1
grep -q "FAILED: ok in BASE, invalid in NEW" "$TMP/out" && pass "ok -> invalid: listed" ||
	fail "ok -> invalid: not listed"

# Bad input: one line, exit 2, the file named.
echo 'not json' > "$TMP/junk.json"
echo '{"schema": "other/1", "results": []}' > "$TMP/other.json"
echo '{"schema": "moebench.result/1", "results": {}}' > "$TMP/nores.json"
expect_bad "malformed file" "junk.json" "$c" "$TMP/junk.json"
expect_bad "other schema" "other.json" "$TMP/other.json" "$c"
expect_bad "results not an array" "nores.json" "$c" "$TMP/nores.json"
expect_bad "missing file" "none.json" "$c" "$TMP/none.json"
expect_bad "one file" "two result files" "$c"
expect_bad "bad alpha" "--alpha" --alpha 2 "$c" "$c"
expect_bad "bad threshold" "--max-regress" --max-regress -1 "$c" "$c"
expect_bad "unknown option" "unknown option" --frobnicate "$c" "$c"
expect_bad "unwritable junit" "cannot" --junit /proc/nope/j.xml "$c" "$c"

# A stranger's file: markup in every string, bad and huge sample arrays.
awk 'BEGIN {
	printf "{\"schema\": \"moebench.result/1\", \"run_id\": \"<r>&\\\"|\\n\", \"results\": ["
	s = "\"samples_s\": [0.001, 0.0011, 0.0012, 0.001, 0.0013]"
	printf "{\"suite\": \"g<&>|\\u0001\", \"status\": \"ok\", \"params\": {\"a]]>\": \"x|y\\n@z\"}, %s},", s
	printf "{\"suite\": \"nulls\", \"status\": \"ok\", \"params\": {}, \"samples_s\": [null, -1, 1e999]},"
	printf "{\"suite\": \"empty\", \"status\": \"ok\", \"params\": {}, \"samples_s\": []},"
	printf "{\"suite\": \"huge\", \"status\": \"ok\", \"params\": {}, \"samples_s\": ["
	for (i = 0; i <= 1000000; i++) printf "%s0.001", i ? "," : ""
	printf "]}, 7, null, {\"suite\": [1]}]}"
}' > "$TMP/hostile.json"
$MOEBENCH compare "$TMP/hostile.json" "$TMP/hostile.json" --junit "$TMP/h.xml" \
	--markdown "$TMP/h.md" > "$TMP/out" 2>&1
expect_eq "hostile: exit" "$?" 0
xml_ok "$TMP/h.xml" && pass "hostile: junit well formed" || fail "hostile: junit malformed"
expect_eq "hostile: four testcases" "$(xml_count "$TMP/h.xml" testcase)" 4
expect_eq "hostile: bad samples noted" "$(grep -c 'bad samples' "$TMP/out")" 4
grep -q "more than 1000000 samples" "$TMP/out" && pass "hostile: huge array skipped" ||
	fail "hostile: huge array"
expect_eq "hostile: no raw markup in markdown" "$(grep -c '<r>\|g<&>\|@z' "$TMP/h.md")" 0
# every Markdown table row has 9 columns: 10 unescaped pipes
expect_eq "hostile: markdown columns" "$(grep '^|' "$TMP/h.md" | sed 's/\\|//g' |
	awk -F'|' 'NF != 11 { bad++ } END { print bad + 0 }')" 0
finish
