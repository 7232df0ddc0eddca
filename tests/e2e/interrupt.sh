# End to end: SIGINT mid-run leaves a valid file marked interrupted, holding
# every case that finished, and the process exits 128+2.
. tests/e2e/lib.inc

# Many short cases; interrupt once at least one has been written.
$MOEBENCH run -b cpu -s gmm --preset quick --iters 20 -o "$TMP/r" -q \
	tokens=64..4K+64 > /dev/null 2> "$TMP/err" &
pid=$!
i=0
while [ $i -lt 600 ]; do
	f=$(newest "$TMP/r")
	if [ -n "$f" ] && [ "$(q "$f" results.# 2>/dev/null || echo 0)" -ge 1 ]; then break; fi
	sleep 0.1
	i=$((i + 1))
done
kill -INT $pid
wait $pid
expect_eq "exit code" "$?" 130
f=$(newest "$TMP/r")
expect_eq "status" "$(q "$f" status)" interrupted
n=$(q "$f" results.#)
[ "$n" -ge 1 ] && [ "$n" -lt 64 ] && pass "kept $n finished cases" || fail "cases: $n"
expect_eq "last kept case ok" "$(q "$f" "results.$((n - 1)).status")" ok
expect_eq "reason names the signal" "$(q "$f" status_reason | grep -c SIGINT)" 1
finish
