# End to end: power and interconnect telemetry over the timed iterations.
# Power from --power-cmd (deterministic here: this machine has no sensors)
# and from a fake RAPL tree; a command that prints garbage leaves power null
# with the reason and the run goes on; interface counter deltas under
# mpirun -np 2 cover at least the bytes the alltoall suite sent.
. tests/e2e/lib.inc

# cmp A OP B: awk evaluates both sides (numbers and arithmetic on them)
cmp() { awk "BEGIN { exit !(($1) $2 ($3)) }"; }

# --power-cmd: a constant 250 W
$MOEBENCH run -b cpu -s gmm --preset quick --iters 20 --warmup 1 -o "$TMP/p" -q \
	--power-cmd "echo 250" --power-hz 50 > /dev/null 2>&1
expect_eq "power-cmd: exit code" "$?" 0
f=$(newest "$TMP/p")
expect_eq "power-cmd: source" "$(q "$f" results.0.power.source)" power-cmd
expect_eq "power-cmd: average" "$(q "$f" results.0.power.avg_w)" 250
dur=$(q "$f" results.0.power.duration_s)
e=$(q "$f" results.0.power.energy_j)
# the integral of 250 W over the region, within a sample's worth
cmp "$e" '>' "250 * $dur * 0.8" && cmp "$e" '<' "250 * $dur * 1.2" &&
	pass "power-cmd: energy = 250 W x duration" || fail "energy $e J over $dur s"
tok=$(q "$f" results.0.cost.tokens)
jpt=$(q "$f" results.0.power.j_per_token)
cmp "$jpt" '>' "0.999 * $e / ($tok * 20)" && cmp "$jpt" '<' "1.001 * $e / ($tok * 20)" &&
	pass "power-cmd: J/token = energy / (tokens x iterations)" || fail "j_per_token $jpt"
n=$(q "$f" results.0.power.samples)
cmp "$n" '>=' 2 && pass "power-cmd: $n samples" || fail "power-cmd: $n samples"

# a command that prints garbage: power is null with the reason; the case is ok
$MOEBENCH run -b cpu -s gmm --preset quick --iters 3 -o "$TMP/g" -q \
	--power-cmd "echo watts" > /dev/null 2>&1
expect_eq "garbage power-cmd: exit code" "$?" 0
f=$(newest "$TMP/g")
expect_eq "garbage power-cmd: case ok" "$(q "$f" results.0.status)" ok
expect_eq "garbage power-cmd: power" "$(q "$f" results.0.power)" null
q "$f" results.0.power_reason | grep -q '"watts" is not one finite' &&
	pass "garbage power-cmd: reason quotes it" || fail "reason: $(q "$f" results.0.power_reason)"

# off, and a bad rate
$MOEBENCH run -b cpu -s gmm --preset quick --iters 2 -o "$TMP/o" -q --power-hz 0 > /dev/null 2>&1
f=$(newest "$TMP/o")
q "$f" results.0.power_reason | grep -q "off" && pass "power-hz 0: off" || fail "power-hz 0"
$MOEBENCH run -b cpu -s gmm --power-hz 5000 -o "$TMP/o" > "$TMP/err" 2>&1
expect_eq "power-hz 5000: exit code" "$?" 2
grep -q "0.1..1000" "$TMP/err" && pass "power-hz 5000: range named" || fail "$(cat "$TMP/err")"

# a fake RAPL package whose counter a writer advances by 1 J every 10 ms
# (100 W), wrapping at 2^32 uJ; each write replaces the file atomically
root="$TMP/sys"
zone="$root/class/powercap/intel-rapl:0"
mkdir -p "$zone" "$root/class/net"
echo package-0 > "$zone/name"
echo 4294967296 > "$zone/max_energy_range_uj"
echo 4290000000 > "$zone/energy_uj"
(
	e=4290000000
	while [ -f "$zone/name" ]; do
		e=$(( (e + 1000000) % 4294967296 ))
		echo $e > "$zone/energy_uj.tmp" && mv "$zone/energy_uj.tmp" "$zone/energy_uj"
		sleep 0.01
	done
) &
writer=$!
$MOEBENCH run -b cpu -s gmm --preset quick --iters 30 -o "$TMP/r" -q --sysfs-root "$root" \
	> /dev/null 2>&1
rc=$?
rm -f "$zone/name"
wait $writer 2> /dev/null
expect_eq "fake RAPL: exit code" "$rc" 0
f=$(newest "$TMP/r")
expect_eq "fake RAPL: source" "$(q "$f" results.0.power.source)" rapl
expect_eq "fake RAPL: from the counter" "$(q "$f" results.0.power.energy_from)" "energy counter"
w=$(q "$f" results.0.power.avg_w)
# the writer's 100 W, slowed by a loaded machine, never above it by much
cmp "$w" '>' 5 && cmp "$w" '<' 130 && pass "fake RAPL: $w W across the wrap" ||
	fail "fake RAPL: average $w W"
expect_eq "fake RAPL: no interfaces in the fake tree" "$(q "$f" results.0.interconnect.counters.interfaces.#)" 0

# info lists every power source, the chosen one marked
$MOEBENCH info --power-cmd "echo 1" > "$TMP/info.json"
expect_eq "info: power-cmd chosen" "$(q "$TMP/info.json" power_sources.0.chosen)" true
expect_eq "info: nvml listed" "$(q "$TMP/info.json" power_sources.1.name)" nvml

# interface counters see at least what the alltoall suite sent (mpirun -np 2
# over TCP: between two ranks of one host the bytes cross the loopback)
if command -v mpirun > /dev/null 2>&1; then
	[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
	env ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 \
		mpirun --oversubscribe --mca btl self,tcp -np 2 \
		$MOEBENCH run -b cpu -s alltoall --preset quick --iters 5 -o "$TMP/m" -q --net-all \
		> /dev/null 2>&1
	expect_eq "mpirun net: exit code" "$?" 0
	f=$(newest "$TMP/m")
	app=$(q "$f" results.0.interconnect.app.bytes_to_other_ranks)
	tx=$(q "$f" results.0.interconnect.counters.tx_bytes)
	cmp "$app" '>' 0 && cmp "$tx" '>=' "$app" &&
		pass "mpirun net: counters $tx B >= application $app B" ||
		fail "mpirun net: counters $tx B, application $app B"
	expect_eq "mpirun net: one node, nothing across" \
		"$(q "$f" results.0.interconnect.app.bytes_across_nodes)" 0
else
	echo "skip: mpirun not found, so the counter-vs-application check is not run"
fi
finish
