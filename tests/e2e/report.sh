# End to end: `moebench report` on real runs (several files, one the
# baseline), its plots and their scripts, the HTML in a headless browser,
# hostile and truncated files, and gnuplot missing or hanging.
. tests/e2e/lib.inc

CHECK="python3 tests/tools/report-check.py"
have_py=0
command -v python3 > /dev/null 2>&1 && have_py=1
have_gp=0
command -v gnuplot > /dev/null 2>&1 && have_gp=1
[ $have_gp = 1 ] || echo "skip: gnuplot not found: the rendered plots are not checked"
[ $have_py = 1 ] || echo "skip: python3 not found: the HTML and hostile-file checks are not run"
ABS=$(cd "$(dirname "$MOEBENCH")" && pwd)/$(basename "$MOEBENCH")

# ---- real runs: A (with power from a command), B (the baseline), C (a size sweep)
R="$TMP/runs"
$MOEBENCH run -b cpu --preset quick --iters 3 --warmup 1 --power-cmd "echo 95" -o "$R/a" -q \
	> /dev/null 2>&1
expect_eq "run A" "$?" 0
$MOEBENCH run -b cpu --preset quick --iters 3 --warmup 1 -o "$R/b" -q > /dev/null 2>&1
expect_eq "run B" "$?" 0
$MOEBENCH run -b cpu -s alltoall --iters 3 --warmup 1 -o "$R/c" -q mode=uniform bytes=1K..64K*4 \
	> /dev/null 2>&1
expect_eq "run C" "$?" 0
A=$(newest "$R/a") B=$(newest "$R/b") C=$(newest "$R/c")
FILES="$A $B $C"
if command -v mpirun > /dev/null 2>&1; then
	[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
	env ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 mpirun --oversubscribe --mca btl self,tcp \
		-np 2 $MOEBENCH run -b cpu -s alltoall --iters 3 --warmup 1 -o "$R/d" -q \
		mode=uniform bytes=1K..64K*4 > /dev/null 2>&1
	expect_eq "run D (mpirun -np 2)" "$?" 0
	FILES="$FILES $(newest "$R/d")"
else
	echo "skip: mpirun not found: no two-rank run in the report"
fi

# ---- the report of all of them, B the baseline
$MOEBENCH report $FILES --baseline "$B" -o "$TMP/rep" > "$TMP/out" 2> "$TMP/err"
expect_eq "report exit" "$?" 0
expect_eq "prints report.html" "$(grep -c "^report: $TMP/rep/report.html\$" "$TMP/out")" 1
expect_eq "prints report.md" "$(grep -c "^report: $TMP/rep/report.md\$" "$TMP/out")" 1
MD="$TMP/rep/report.md" HT="$TMP/rep/report.html"
n=$(echo $FILES | wc -w | tr -d ' ')
expect_eq "a system row per file" "$(grep -c '^| R[0-9]' "$MD")" "$n"
expect_eq "baseline marked" "$(grep -c '^| R2 [^|]*(baseline) |' "$MD")" 1
# A's gmm case has B's as baseline: its time carries a ratio; B's own row none
grep '^| (one case) | R1 ' "$MD" | grep -q '(×[0-9.]*)' && pass "ratio to the baseline" ||
	fail "no ratio in R1's rows"
grep '^| (one case) | R2 ' "$MD" | grep -q '(×' && fail "the baseline has a ratio to itself" ||
	pass "baseline has no ratio"
grep -q 'ratio: none — the baseline R2 [^ ]* has no case with these parameters' "$MD" &&
	pass "missing baseline case noted" || fail "no note for a case the baseline lacks"
grep -q '^[0-9]*\. MFU: null — no published peak for a CPU' "$MD" && pass "MFU note" ||
	fail "no MFU note"
grep -q '^[0-9]*\. J/token: null — no power source' "$MD" && pass "power note" ||
	fail "no power note for B"
grep -q '^| (one case) | R1 [^|]*| ok |.*| [0-9.e-]* |$' "$MD" && pass "J/token of A" ||
	fail "A's J/token missing"
grep -q 'n/a \\\[[0-9]*\\\]' "$MD" && pass "n/a cells carry a note" || fail "no n/a [k]"
grep -q '^## Suite gmm' "$MD" && grep -q '^## Suite alltoall' "$MD" && pass "suite sections" ||
	fail "suite sections"
expect_eq "nothing on stderr" "$(wc -c < "$TMP/err" | tr -d ' ')" 0

P="$TMP/rep/plots"
for kind in throughput-gmm iterations-gmm phases-train_step alltoall-busbw energy; do
	ls "$P"/*-$kind.gp > /dev/null 2>&1 && pass "plot $kind" || fail "no plot $kind"
done
bad=0
for gp in "$P"/*.gp; do
	b=${gp%.gp}
	[ -s "$b.dat" ] || { bad=1; echo "  no data: $b.dat"; }
	if [ $have_gp = 1 ]; then
		[ -s "$b.svg" ] && [ -s "$b.png" ] || { bad=1; echo "  not rendered: $b"; }
		[ "$(head -c 4 "$b.png" | tail -c 3)" = PNG ] || { bad=1; echo "  not a PNG: $b.png"; }
		grep -q '<svg' "$b.svg" || { bad=1; echo "  not an SVG: $b.svg"; }
	fi
done
expect_eq "every plot has its script, data, SVG and PNG" "$bad" 0
if [ $have_gp = 1 ]; then
	# a reader re-renders from the script and data alone
	first=$(ls "$P"/*.gp | head -n 1)
	mkdir "$TMP/again" && cp "${first%.gp}.gp" "${first%.gp}.dat" "$TMP/again/"
	(cd "$TMP/again" && gnuplot "$(basename "$first")") > /dev/null 2>&1
	expect_eq "re-render exit" "$?" 0
	[ -s "$TMP/again/$(basename "${first%.gp}").svg" ] && pass "re-rendered SVG" ||
		fail "the script does not re-render"
	expect_eq "SVGs inlined" "$(grep -c '<svg' "$HT")" "$(ls "$P"/*.svg | wc -l | tr -d ' ')"
	grep -q 'points a line\|consecutive' "$MD" && fail "decimated with 3 iterations" ||
		pass "short series not decimated"
fi
if [ $have_py = 1 ]; then
	$CHECK --screenshot "$TMP/shot.png" "$HT" > "$TMP/chk" 2>&1
	expect_eq "html checks (static; chromium unless skipped)" "$?" 0
	sed 's/^/  /' "$TMP/chk"
fi

# ---- a hostile file: a real one with names made to break out of every medium
if [ $have_py = 1 ]; then
	H="$TMP/hostile"
	mkdir -p "$H/work"
	python3 - "$A" "$H/hostile.json" "$H" "$$" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
h, pid = sys.argv[3], sys.argv[4]
evil = ["<script>alert(1)</script>", "../../etc/passwd",
        f'"; system("touch {h}/pwned1")', f"'; system('touch {h}/pwned2') #",
        f"`touch {h}/pwned3`", "x\n| y |\r\n# h\x01", "A" * 100000,
        "../" * 40 + f"tmp/mb_escape_{pid}", "<img src=x onerror=alert(2)>"]
cases = d["results"]
out = []
for i, name in enumerate(evil):
    c = json.loads(json.dumps(cases[i % len(cases)]))
    c["suite"] = name
    c["params"]["<b>k</b>|"] = "</td><script>alert(3)</script>"
    out.append(c)
bad = json.loads(json.dumps(cases[0]))
bad["status"] = 'invalid"><script>alert(5)</script>'
bad["reason"] = "<script>alert(4)</script> | `x`"
out.append(bad)
d["results"] = out
d["system"]["hostname"] = "<script>alert(6)</script>"
d["devices"][0]["name"] = f'"; system("touch {h}/pwned4") ' + "B" * 5000
d["config"]["backend"] = "../../etc/passwd'\n"
d["run_id"] = "<svg onload=alert(7)>"
d["status_reason"] = "</ol><script>alert(8)</script>"
json.dump(d, open(sys.argv[2], "w"))
PY
	touch "$TMP/marker"
	(cd "$H/work" && "$ABS" report "$H/hostile.json" "$B" -o "$H/rep") > "$TMP/out" 2> "$TMP/err"
	expect_eq "hostile: exit" "$?" 0
	expect_eq "hostile: no command ran" "$(ls "$H" | grep -c pwned)" 0
	expect_eq "hostile: nothing written outside DIR" \
		"$(find "$TMP" -newer "$TMP/marker" -type f | grep -v "^$H/rep/" | grep -vc "^$TMP/out\$\|^$TMP/err\$")" 0
	expect_eq "hostile: no file outside plots/" "$(find "$H/rep" -type f | grep -vc "^$H/rep/plots/\|^$H/rep/report\.\(md\|html\)\$")" 0
	expect_eq "hostile: file names [A-Za-z0-9._-]" \
		"$(ls "$H/rep/plots" | grep -vc '^[A-Za-z0-9._-]*$')" 0
	expect_eq "hostile: no .. in file names" "$(ls "$H/rep/plots" | grep -c '\.\.')" 0
	[ -e "/tmp/mb_escape_$$" ] && fail "hostile: wrote /tmp/mb_escape_$$" ||
		pass "hostile: no path from a name"
	expect_eq "hostile: no <script in the HTML" "$(grep -ci '<script' "$H/rep/report.html")" 0
	grep -q '&lt;script&gt;alert(1)&lt;/script&gt;' "$H/rep/report.html" &&
		pass "hostile: shown escaped in HTML" || fail "hostile: the name is not shown escaped"
	grep -q '\\<script\\>alert(1)\\</script\\>' "$H/rep/report.md" &&
		pass "hostile: shown escaped in Markdown" || fail "hostile: not escaped in Markdown"
	# every Markdown table row has as many unescaped pipes as its header
	python3 - "$H/rep/report.md" > "$TMP/pipes" <<'PY'
import re, sys
want = None
for line in open(sys.argv[1], encoding="utf-8"):
    if not line.startswith("|"):
        want = None
        continue
    n = len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))
    if want is None:
        want = n
    elif n != want:
        print("row with", n, "pipes, header", want, ":", line[:80])
PY
	expect_eq "hostile: Markdown tables intact" "$(wc -l < "$TMP/pipes" | tr -d ' ')" 0
	$CHECK --static-only --min-svg 0 "$H/rep/report.html" > "$TMP/chk" 2>&1
	expect_eq "hostile: HTML well formed, nothing runs or loads" "$?" 0
	[ "$?" = 0 ] || sed 's/^/  /' "$TMP/chk"
	if [ $have_gp = 1 ]; then
		expect_eq "hostile: every plot rendered" "$(grep -c 'not rendered' "$H/rep/report.md")" 0
		$CHECK "$H/rep/report.html" > "$TMP/chk" 2>&1
		expect_eq "hostile: in the browser" "$?" 0
		grep -q '^skip:' "$TMP/chk" && sed 's/^/  /' "$TMP/chk"
	fi
fi

# ---- a truncated file is named and skipped; alone it is an input error
head -c 700 "$A" > "$TMP/trunc.json"
$MOEBENCH report "$B" "$TMP/trunc.json" -o "$TMP/trep" > "$TMP/out" 2> "$TMP/err"
expect_eq "truncated: exit" "$?" 0
expect_eq "truncated: one line" "$(wc -l < "$TMP/err" | tr -d ' ')" 1
grep -q "^moebench: report: .*trunc.json" "$TMP/err" && pass "truncated: named" ||
	fail "truncated: stderr '$(cat "$TMP/err")'"
grep -q '^- skipped .*trunc.json: .*trunc.json' "$TMP/trep/report.md" && pass "truncated: listed as skipped" ||
	fail "truncated: not listed"
$MOEBENCH report "$TMP/trunc.json" -o "$TMP/t2" > /dev/null 2> "$TMP/err"
expect_eq "only truncated: exit" "$?" 2
expect_eq "only truncated: one line" "$(wc -l < "$TMP/err" | tr -d ' ')" 1
[ -e "$TMP/t2" ] && fail "only truncated: wrote a report" || pass "only truncated: nothing written"
$MOEBENCH report "$B" --baseline "$TMP/trunc.json" -o "$TMP/t3" > /dev/null 2> "$TMP/err"
expect_eq "truncated baseline: exit" "$?" 2

# ---- without gnuplot: the report is still written, says so, keeps scripts and data
for how in MOEBENCH_GNUPLOT=/nonexistent PATH=/nonexistent; do
	env "$how" "$ABS" report "$A" "$B" -o "$TMP/nogp" > "$TMP/out" 2> "$TMP/err"
	expect_eq "no gnuplot ($how): exit" "$?" 0
	[ -s "$TMP/nogp/report.md" ] && [ -s "$TMP/nogp/report.html" ] &&
		pass "no gnuplot ($how): report written" || fail "no gnuplot ($how): no report"
	grep -q '^> Plots not rendered: cannot run' "$TMP/nogp/report.md" &&
		pass "no gnuplot ($how): says so" || fail "no gnuplot ($how): no note"
	grep -q 'plots not rendered' "$TMP/err" && pass "no gnuplot ($how): stderr" ||
		fail "no gnuplot ($how): stderr silent"
	ngp=$(ls "$TMP/nogp/plots" | grep -c '\.gp$')
	[ "$ngp" -ge 5 ] && pass "no gnuplot ($how): scripts kept" || fail "no gnuplot ($how): $ngp scripts"
	expect_eq "no gnuplot ($how): data kept" "$(ls "$TMP/nogp/plots" | grep -c '\.dat$')" "$ngp"
	expect_eq "no gnuplot ($how): no picture" "$(ls "$TMP/nogp/plots" | grep -c '\.svg$\|\.png$')" 0
	expect_eq "no gnuplot ($how): nothing inlined" "$(grep -c '<svg' "$TMP/nogp/report.html")" 0
	rm -rf "$TMP/nogp"
done
if [ $have_py = 1 ]; then
	MOEBENCH_GNUPLOT=/nonexistent $MOEBENCH report "$A" -o "$TMP/nogp" > /dev/null 2>&1
	$CHECK --static-only --min-svg 0 "$TMP/nogp/report.html" > /dev/null 2>&1
	expect_eq "no gnuplot: HTML well formed" "$?" 0
	# The browser check must fail on a page without plots: it can tell.
	if command -v chromium > /dev/null 2>&1; then
		$CHECK --min-svg 0 "$TMP/nogp/report.html" > "$TMP/chk" 2>&1
		expect_eq "checker: a page without plots fails" "$?" 1
		grep -q 'no plot in the screenshot' "$TMP/chk" && pass "checker: says blank" ||
			fail "checker: $(tail -n 1 "$TMP/chk")"
		printf '<!DOCTYPE html><html><body><svg width="9" height="9"></svg><p>x</p></body></html>' \
			> "$TMP/js.html"
		printf '<script>not_defined();</script>' >> "$TMP/js.html"
		$CHECK --static-only "$TMP/js.html" > /dev/null 2>&1
		expect_eq "checker: a script fails statically" "$?" 1
		$CHECK --browser-only "$TMP/js.html" > "$TMP/chk" 2>&1
		grep -q '^FAIL: console: .*Uncaught ReferenceError' "$TMP/chk" &&
			pass "checker: a console error fails" || fail "checker: $(cat "$TMP/chk")"
		printf '<!DOCTYPE html><html><body><svg width="9" height="9"></svg></body></html>' \
			> "$TMP/open.html"
		printf '<div><p>unclosed</div>' >> "$TMP/open.html"
		$CHECK --static-only "$TMP/open.html" > /dev/null 2>&1
		expect_eq "checker: mismatched tags fail" "$?" 1
	fi
fi

# ---- a gnuplot that hangs is killed at the limit, with its children
cat > "$TMP/hang.sh" <<EOF
#!/bin/sh
echo \$\$ > "$TMP/hang.pid"
sleep 60
EOF
chmod +x "$TMP/hang.sh"
t0=$(date +%s)
MOEBENCH_GNUPLOT="$TMP/hang.sh" MOEBENCH_GNUPLOT_TIMEOUT_S=1 \
	$MOEBENCH report "$A" -o "$TMP/hang" > /dev/null 2>&1
expect_eq "hang: exit" "$?" 0
[ $(( $(date +%s) - t0 )) -le 10 ] && pass "hang: bounded" || fail "hang: took $(( $(date +%s) - t0 )) s"
grep -q 'killed after 1 s' "$TMP/hang/report.md" && pass "hang: noted" || fail "hang: no note"
kill -0 "$(cat "$TMP/hang.pid")" 2> /dev/null && fail "hang: left running" || pass "hang: gone"

# ---- bounded work: 5000 cases, 3000 samples in one
if [ $have_py = 1 ]; then
	python3 - "$B" "$TMP/big.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = [r for r in d["results"] if r["suite"] == "gmm"][0]
out = []
for i in range(5000):
    x = json.loads(json.dumps(c))
    x["params"]["tokens"] = i + 1
    out.append(x)
out[0]["samples_s"] = [0.001 * (1 + (k % 7)) for k in range(3000)]
d["results"] = out
json.dump(d, open(sys.argv[2], "w"))
PY
	t0=$(date +%s)
	$MOEBENCH report "$TMP/big.json" -o "$TMP/big" > /dev/null 2>&1
	expect_eq "big: exit" "$?" 0
	[ $(( $(date +%s) - t0 )) -le 60 ] && pass "big: bounded time" || fail "big: too slow"
	grep -q '^- 904 cases left out: a report joins at most 4096' "$TMP/big/report.md" &&
		pass "big: cases past the bound noted" || fail "big: no note of cases left out"
	grep -q 'more cases are not drawn (at most 40 per plot)' "$TMP/big/report.md" &&
		pass "big: bars bounded" || fail "big: bars not bounded"
	grep -q 'means of up to 6 consecutive iterations' "$TMP/big/report.md" &&
		pass "big: long series decimated" || fail "big: series not decimated"
	blk=$(awk 'NF == 0 { exit } { n++ } END { print n }' "$TMP/big/plots/"*-iterations-gmm.dat)
	expect_eq "big: at most 500 points a line" "$blk" 500
fi
finish
