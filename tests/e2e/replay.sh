# End to end: `moebench run --replay FILE` runs exactly the recorded cases
# again (suites, every parameter, model, size, seed, warm-up, iterations),
# and refuses, in one line, what would change them or a file it cannot use.
. tests/e2e/lib.inc

$MOEBENCH run -b cpu -s gmm,alltoall --model pangu-pro-moe --preset quick --iters 3 \
	--warmup 1 --seed 7 -o "$TMP/a" -q skew=0,1.2 > /dev/null 2>&1
expect_eq "recorded run: exit code" "$?" 0
f=$(newest "$TMP/a")
$MOEBENCH run --replay "$f" -o "$TMP/b" -q > /dev/null 2>&1
expect_eq "replay: exit code" "$?" 0
g=$(newest "$TMP/b")
expect_eq "replay: cases" "$(q "$g" results.#)" "$(q "$f" results.#)"
for i in 0 1 2 3; do
	expect_eq "replay: case $i params" "$(q "$g" results.$i.params)" "$(q "$f" results.$i.params)"
	expect_eq "replay: case $i ok" "$(q "$g" results.$i.status)" ok
done
for k in model size seed warmup iters backend; do
	expect_eq "replay: config.$k" "$(q "$g" config.$k)" "$(q "$f" config.$k)"
done
expect_eq "replay: replay_of" "$(q "$g" config.replay_of)" "$(q "$f" run_id)"
expect_eq "replay: every parameter as given" "$(q "$g" results.0.params_source.hidden)" user

# what would change the recorded configuration is refused
for extra in "-s gmm" "--iters 5" "--model tiny" "tokens=64"; do
	$MOEBENCH run --replay "$f" -o "$TMP/c" $extra > "$TMP/err" 2>&1
	expect_eq "replay with $extra: exit code" "$?" 2
	expect_eq "replay with $extra: one line" "$(wc -l < "$TMP/err")" 1
done

# files it cannot use: one line naming the file, exit 2
printf '{"schema": "moebench.result/1"' > "$TMP/trunc.json"
S='[[:space:]]*'
sed "s/\"suite\":$S\"gmm\"/\"suite\": \"nosuch\"/" "$f" > "$TMP/suite.json"
sed "s/\"hidden\":${S}512,/\"hidden\": 99999999,/" "$f" > "$TMP/range.json"
sed "s/\"skew\":${S}0,/\"skew\": \"zero\",/" "$f" > "$TMP/type.json"
for bad in trunc suite range type; do
	$MOEBENCH run --replay "$TMP/$bad.json" -o "$TMP/c" > "$TMP/err" 2>&1
	expect_eq "replay of a $bad file: exit code" "$?" 2
	grep -q "$bad.json" "$TMP/err" && pass "replay of a $bad file: named" ||
		fail "replay of a $bad file: $(cat "$TMP/err")"
done
finish
