# End to end: a rank that dies (kill -9) or stalls (SIGSTOP) mid-case ends
# the job within a bounded time, with a non-zero exit, and rank 0's result
# file stays valid with every case finished before intact.
. tests/e2e/lib.inc

if ! command -v mpirun > /dev/null 2>&1; then
	echo "skip: mpirun not found (install openmpi-bin)"
	finish
	exit 0
fi
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN="env ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 mpirun --oversubscribe --mca btl self,tcp"

# The pid of rank $1 of the run writing into directory $2.
rank_pid() {
	for p in $(pgrep -x moebench); do
		if (tr '\0' '\n' < /proc/$p/environ) 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" &&
			(tr '\0' ' ' < /proc/$p/cmdline) 2> /dev/null | grep -q "$2"; then
			echo $p
			return
		fi
	done
}

# Start a 2-rank run into $1 (further arguments: moebench run options) in the
# background: a quick first case, then one that runs for minutes.
start_job() {
	dir=$1
	shift
	$MPIRUN -np 2 $MOEBENCH run -b cpu -s gemm --iters 100 --warmup 1 -o "$dir" -q \
		m=16,4096 n=2048 k=2048 "$@" > "$dir.out" 2>&1 &
	job=$!
	# wait for the first case to be in the file (it takes well under a second)
	n=0
	while [ $n -lt 600 ]; do
		f=$(newest "$dir")
		[ -n "$f" ] && [ "$(q "$f" results.# 2> /dev/null)" = 1 ] && return 0
		sleep 0.1
		n=$((n + 1))
	done
	fail "the first case never reached the file"
	return 1
}

# wait_bounded PID SECONDS: wait for PID, at most SECONDS; sets rc and took.
wait_bounded() {
	t0=$(date +%s)
	n=0
	while kill -0 "$1" 2> /dev/null && [ $n -lt $(($2 * 10)) ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if kill -0 "$1" 2> /dev/null; then
		fail "the job was still running $2 s later"
		kill -9 "$1" 2> /dev/null
	fi
	wait "$1"
	rc=$?
	took=$(($(date +%s) - t0))
}

# the file is valid JSON with the finished case intact and the given status
check_file() {
	f=$(newest "$1")
	expect_eq "$2: status" "$(q "$f" status)" failed
	expect_eq "$2: the finished case kept" "$(q "$f" results.0.status)" ok
	expect_eq "$2: only finished cases" "$(q "$f" results.#)" 1
	q "$f" status_reason | grep -q "$3" && pass "$2: reason says '$3'" ||
		fail "$2: reason: $(q "$f" status_reason)"
}

mkdir -p "$TMP/kill"
if start_job "$TMP/kill"; then
	pid=$(rank_pid 1 "$TMP/kill")
	if [ -z "$pid" ]; then
		fail "kill: rank 1's pid not found"
	else
		kill -9 "$pid"
		wait_bounded $job 30
		[ "$rc" -ne 0 ] && pass "kill -9 rank 1: exit $rc after $took s" ||
			fail "kill -9 rank 1: exit 0"
		check_file "$TMP/kill" "kill -9 rank 1" "signal"
		grep -q "rank 1" "$TMP/kill.out" && pass "kill -9 rank 1: the dead rank is named" ||
			fail "kill -9 rank 1: no message names rank 1: $(cat "$TMP/kill.out")"
	fi
fi

mkdir -p "$TMP/stop"
if start_job "$TMP/stop" --timeout 3; then
	pid=$(rank_pid 1 "$TMP/stop")
	if [ -z "$pid" ]; then
		fail "stall: rank 1's pid not found"
	else
		kill -STOP "$pid"
		wait_bounded $job 30
		kill -CONT "$pid" 2> /dev/null
		kill -9 "$pid" 2> /dev/null
		[ "$rc" -ne 0 ] && pass "stalled rank 1: exit $rc after $took s" ||
			fail "stalled rank 1: exit 0"
		check_file "$TMP/stop" "stalled rank 1" "no progress"
		grep -q "rank 0 ([^)]*): no progress" "$TMP/stop.out" &&
			pass "stalled rank 1: rank 0 says it waited" ||
			fail "stalled rank 1: $(cat "$TMP/stop.out")"
	fi
fi
# SIGTERM to the launcher: it passes it to the ranks; the file keeps the
# finished case and says why it stopped.
mkdir -p "$TMP/term"
if start_job "$TMP/term"; then
	kill -TERM $job
	wait_bounded $job 30
	[ "$rc" -ne 0 ] && pass "SIGTERM to mpirun: exit $rc after $took s" ||
		fail "SIGTERM to mpirun: exit 0"
	f=$(newest "$TMP/term")
	expect_eq "SIGTERM to mpirun: the finished case kept" "$(q "$f" results.0.status)" ok
	st=$(q "$f" status)
	[ "$st" = failed ] || [ "$st" = interrupted ] && pass "SIGTERM to mpirun: status $st" ||
		fail "SIGTERM to mpirun: status $st"
	q "$f" status_reason | grep -q "signal" && pass "SIGTERM to mpirun: the signal named" ||
		fail "SIGTERM to mpirun: reason $(q "$f" status_reason)"
fi
finish
