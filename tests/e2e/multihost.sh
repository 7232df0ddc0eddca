# End to end on several hosts of one machine: two network namespaces
# (tests/tools/netns-hosts.sh) joined by veth pairs through a bridge, each
# host's link shaped with tc tbf to RATE, far below the loopback that two
# ranks of one host talk over. mpirun runs in the first host and launches
# onto the second through tests/tools/netns-rsh, so the bytes between nodes
# really cross the shaped link. 2 hosts x 2 ranks run the alltoall suite;
# the world has 2 nodes, something crosses between them, and rank 0's
# node's interface counters cover the application's count of inter-node
# bytes. With algo=flat,hier the hierarchical dispatch sends each token
# once to each other node that needs it, so fewer bytes cross.
# Skips, with the reason, where namespaces cannot be made (not root, no
# CAP_NET_ADMIN, no tbf) or there is no mpirun.
. tests/e2e/lib.inc

NH=tests/tools/netns-hosts.sh
if ! why=$(sh $NH check); then
	echo "skip: network namespaces: $why"
	exit 0
fi
if ! command -v mpirun > /dev/null 2>&1; then
	echo "skip: mpirun not found (install openmpi-bin)"
	exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# cmp A OP B: awk evaluates both sides (numbers and arithmetic on them)
cmp() { awk "BEGIN { exit !(($1) $2 ($3)) }"; }

P=mb$$       # unique per run: parallel runs do not collide
RATE=200mbit # 25 MB/s a host: a quick-preset case takes about a second
IF=mbnet0    # the hosts' interface (netns-hosts.sh)
trap 'sh $NH down $P; rm -rf "$TMP"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

if ! sh $NH up 2 $P $RATE; then
	fail "netns-hosts.sh up 2 $P $RATE"
	finish
fi
H0=${P}h0 H1=${P}h1

# the rank processes find the binary and the agent from another namespace's
# daemon, which starts in this directory: absolute paths
case $MOEBENCH in /*) MB=$MOEBENCH ;; *) MB=$PWD/$MOEBENCH ;; esac
AGENT=$PWD/tests/tools/netns-rsh
[ -x "$AGENT" ] || { fail "$AGENT is not executable (Open MPI runs it itself)"; finish; }
# btl tcp between every two ranks: a host's two ranks meet on its own
# address, which the kernel carries over loopback; oob too stays on the
# hosts' subnet. timeout: a hung launch must not hang the suite.
MPIRUN="timeout --foreground 120 env ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 OMP_NUM_THREADS=1
	$AGENT --self $H0 mpirun --mca plm_rsh_agent $AGENT
	--mca btl self,tcp --mca btl_tcp_if_include 10.123.0.0/24 --mca oob_tcp_if_include 10.123.0.0/24
	--host $H0:2,$H1:2 -np 4"

# algo=flat,hier once the alltoall suite has it; case 0 is flat either way
ALGO=
$MOEBENCH list | awk '/^  [a-z]/ { s = $1 } s == "alltoall" && $1 == "algo" && /hier/ { f = 1 }
	END { exit !f }' && ALGO=algo=flat,hier

start=$(date +%s)
$MPIRUN $MB run -b cpu -s alltoall --preset quick --iters 3 -o "$TMP/r" -q $ALGO \
	> "$TMP/out" 2>&1
rc=$?
echo "  mpirun over $H0, $H1 ($RATE): exit $rc in $(($(date +%s) - start)) s"
[ $rc -eq 0 ] || sed 's/^/  | /' "$TMP/out" | tail -n 20
expect_eq "exit code" "$rc" 0
f=$(newest "$TMP/r")
if [ -z "$f" ]; then
	fail "no result file"
	finish
fi
expect_eq "run status" "$(q "$f" status)" complete
expect_eq "world.size" "$(q "$f" world.size)" 4
expect_eq "world.nodes" "$(q "$f" world.nodes)" 2
expect_eq "ranks 0, 1 on node 0; 2, 3 on node 1" "$(q "$f" world.node_of_rank)" "[0,0,1,1]"
expect_eq "rank 0's host" "$(q "$f" world.hosts.0)" "$H0"
expect_eq "rank 3's host" "$(q "$f" world.hosts.3)" "$H1"

# check_case I NAME: the case ran, exactly, and its inter-node bytes crossed
# rank 0's node's link. With two nodes every byte between them leaves node 0
# (its tx) or enters it (its rx), so that link's tx + rx covers the
# application's bytes_across_nodes (a total over all ranks and timed
# iterations) with no per-node share to guess; so does the sum of both
# nodes' tx (counters.tx_bytes: each node's listed interfaces, here its one
# veth). The runner reads the counters between barriers around the timed
# iterations, so every byte of the region has arrived and none of the
# warm-up's is in flight:
#   across <= counters <= across x 1.10 + 256 KiB
# the 10% and 256 KiB for headers, acknowledgements and the barriers. The
# lower bound fails when the bytes did not cross the link, the upper one
# when the application's count is short.
check_case() {
	st=$(q "$f" results.$1.status)
	[ "$st" = ok ] || echo "  reason: $(q "$f" results.$1.reason)"
	expect_eq "$2: status" "$st" ok
	expect_eq "$2: exact check" "$(q "$f" results.$1.check.mismatched)" 0
	across=$(q "$f" results.$1.interconnect.app.bytes_across_nodes)
	inside=$(q "$f" results.$1.interconnect.app.bytes_inside_node)
	tx=0 rx=0
	n=$(q "$f" results.$1.interconnect.counters.interfaces.#)
	i=0
	while [ $i -lt "${n:-0}" ]; do
		if [ "$(q "$f" results.$1.interconnect.counters.interfaces.$i.name)" = $IF ]; then
			tx=$(q "$f" results.$1.interconnect.counters.interfaces.$i.tx_bytes)
			rx=$(q "$f" results.$1.interconnect.counters.interfaces.$i.rx_bytes)
		fi
		i=$((i + 1))
	done
	link=$(awk "BEGIN { printf \"%.0f\", $tx + $rx }")
	sum_tx=$(q "$f" results.$1.interconnect.counters.tx_bytes)
	echo "  $2: p50 $(q "$f" results.$1.stats_s.p50) s, busbw $(q "$f" results.$1.metrics.busbw_gbps) GB/s"
	echo "  $2: application: $across B across nodes, $inside B inside"
	echo "  $2: counters: $H0 $IF tx $tx + rx $rx = $link B ($(awk "BEGIN { printf \"%.3f\", $link / $across }") x);" \
		"both nodes' tx $sum_tx B ($(awk "BEGIN { printf \"%.3f\", $sum_tx / $across }") x)"
	cmp "$across" '>' 0 && pass "$2: bytes cross between nodes" ||
		fail "$2: bytes_across_nodes '$across'"
	for c in "$H0 $IF tx + rx:$link" "both nodes' tx:$sum_tx"; do
		cmp "${c##*:}" '>=' "$across" && cmp "${c##*:}" '<=' "$across * 1.10 + 262144" &&
			pass "$2: ${c%:*} ${c##*:} B covers the application's $across B across nodes" ||
			fail "$2: ${c%:*} ${c##*:} B, application's $across B across nodes"
	done
}
check_case 0 flat

if [ -z "$ALGO" ]; then
	echo "  (no algo parameter in the alltoall suite yet: hier not run)"
	finish
fi
check_case 1 hier
expect_eq "hier: same routed bytes as flat" "$(q "$f" results.1.cost.bytes)" "$(q "$f" results.0.cost.bytes)"
expect_eq "hier: nodes seen by the suite" "$(q "$f" results.1.info.nodes)" 2
# flat sends every (token, expert) row to the expert's node; hier sends each
# token at most once to each other node: at most ranks x (nodes - 1) x
# tokens rows, each way (phases), every iteration
flat_x=$(q "$f" results.0.interconnect.app.bytes_across_nodes)
hier_x=$(q "$f" results.1.interconnect.app.bytes_across_nodes)
bound=$(($(q "$f" world.size) * ($(q "$f" world.nodes) - 1) * $(q "$f" results.1.params.tokens) *
	$(q "$f" results.1.info.row_bytes) * $(q "$f" results.1.info.phases) *
	$(q "$f" results.1.interconnect.app.iterations)))
cmp "$hier_x" '<' "$flat_x" && pass "hier: fewer bytes across nodes ($hier_x < $flat_x)" ||
	fail "hier: $hier_x B across nodes, flat $flat_x"
cmp "$hier_x" '<=' "$bound" && pass "hier: at most one row a token a node ($hier_x <= $bound)" ||
	fail "hier: $hier_x B across nodes, over the bound $bound"
cmp "$(q "$f" results.1.interconnect.app.bytes_inside_node)" '>' \
	"$(q "$f" results.0.interconnect.app.bytes_inside_node)" &&
	pass "hier: forwards more inside the node" || fail "hier: no more bytes inside the node"
# which is faster is printed, not asserted: over the 200 Mbit/s link hier
# took 0.33-0.67 of flat's time in 20 runs here, but on a loaded 2-core machine its
# extra hop inside the node costs CPU that a busy neighbour may not leave it
echo "  hier / flat p50: $(awk -v h="$(q "$f" results.1.stats_s.p50)" -v f="$(q "$f" results.0.stats_s.p50)" \
	'BEGIN { printf "%.2f", h / f }')"
finish
