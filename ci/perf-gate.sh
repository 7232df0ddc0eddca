#!/bin/sh
# perf-gate.sh: the performance gate a CI job calls.
#
# Runs the quick suite on the CPU, compares it with the baseline stored for
# this machine's device (results/baselines/<device>/baseline.json, <device>
# a sanitised devices[0].name of the new run: "Intel(R) Xeon(R) Processor"
# is intel-r-xeon-r-processor), writes the JUnit and Markdown summaries and
# exits with `moebench compare`'s code: 0 no regression, 1 a regression or a
# case that broke, 2 bad input. With no baseline stored it says how to make
# one and exits 0. See results/baselines/README.md.
#
# Usage: ci/perf-gate.sh [--store-baseline] [--baseline FILE] [--out DIR]
#                        [-- COMPARE_OPTIONS...]
#   --store-baseline  store this run as the device's baseline (replacing
#                     any) instead of comparing; refused unless every case is ok
#   --baseline FILE   compare with FILE instead of the device's baseline
#   --out DIR         where the run and the summaries go (default report/perf-gate):
#                     DIR/runs/<run-id>.json, DIR/junit.xml, DIR/summary.md
#   after --           options for moebench compare (--max-regress 10, --alpha 0.01)
# Environment: MOEBENCH (default ./build/moebench), JSONQ (default
# ./build/tests/jsonq; an awk fallback reads the device name without it),
# PERF_GATE_RUN_ARGS (extra `moebench run` arguments, e.g. "--iters 20"),
# GITHUB_STEP_SUMMARY (when set, the Markdown summary is appended to it).
set -u
cd "$(dirname "$0")/.."
MOEBENCH=${MOEBENCH:-./build/moebench}
JSONQ=${JSONQ:-./build/tests/jsonq}
OUTDIR=report/perf-gate
BASELINE=
STORE=0
while [ $# -gt 0 ]; do
	case $1 in
	--store-baseline) STORE=1 ;;
	--baseline) BASELINE=${2:?--baseline needs a file}; shift ;;
	--out) OUTDIR=${2:?--out needs a directory}; shift ;;
	--) shift; break ;;
	-h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
	*) echo "perf-gate: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done
[ -x "$MOEBENCH" ] || { echo "perf-gate: no $MOEBENCH: build it first (make)" >&2; exit 2; }

# devices[0].name of a result file, with jsonq or, without it, from the
# formatted JSON (the first "name" after "devices").
device_name() {
	if [ -x "$JSONQ" ]; then
		"$JSONQ" "$1" devices.0.name 2>/dev/null
	else
		awk '/"devices":/ { d = 1 } d && /"name":/ {
			sub(/^[^:]*:[ \t]*"/, ""); sub(/",?[ \t]*$/, ""); print; exit }' "$1"
	fi
}

# A directory name from a device name: lower case, runs of anything but
# [a-z0-9] become one '-', at most 64 characters.
sanitise() {
	s=$(printf '%s' "$1" | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9][^a-z0-9]*/-/g; s/^-//; s/-$//' |
		cut -c1-64)
	printf '%s\n' "${s:-unknown-device}"
}

mkdir -p "$OUTDIR/runs" || { echo "perf-gate: cannot create $OUTDIR" >&2; exit 2; }
# shellcheck disable=SC2086 # PERF_GATE_RUN_ARGS is a list of arguments
"$MOEBENCH" run -b cpu --preset quick -q -o "$OUTDIR/runs" ${PERF_GATE_RUN_ARGS:-}
run_rc=$?
if [ "$run_rc" -ge 2 ]; then
	echo "perf-gate: moebench run failed (exit $run_rc)" >&2
	exit "$run_rc"
fi
new=$(ls -t "$OUTDIR"/runs/*.json | head -n 1)
device=$(sanitise "$(device_name "$new")")
stored=results/baselines/$device/baseline.json
[ -n "$BASELINE" ] || BASELINE=$stored

if [ "$STORE" = 1 ]; then
	if [ "$run_rc" -ne 0 ]; then
		echo "perf-gate: not storing $new as a baseline: some case is not ok" >&2
		exit 1
	fi
	mkdir -p "$(dirname "$BASELINE")" && cp "$new" "$BASELINE.tmp" && mv "$BASELINE.tmp" "$BASELINE" ||
		{ echo "perf-gate: cannot write $BASELINE" >&2; exit 2; }
	echo "perf-gate: stored $new as the baseline $BASELINE; commit it to use it in CI"
	exit 0
fi

if [ ! -f "$BASELINE" ]; then
	echo "perf-gate: no baseline for device '$device' ($BASELINE); nothing to compare."
	echo "perf-gate: to create one on this machine: ci/perf-gate.sh --store-baseline," \
	     "then commit $stored (see results/baselines/README.md)."
	exit 0
fi
"$MOEBENCH" compare "$BASELINE" "$new" --junit "$OUTDIR/junit.xml" \
	--markdown "$OUTDIR/summary.md" "$@"
rc=$?
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$OUTDIR/summary.md" ]; then
	cat "$OUTDIR/summary.md" >> "$GITHUB_STEP_SUMMARY"
fi
case $rc in
0) echo "perf-gate: no regression against $BASELINE" ;;
1) echo "perf-gate: REGRESSION or broken case against $BASELINE (see $OUTDIR/summary.md)" ;;
*) echo "perf-gate: compare failed (exit $rc)" ;;
esac
exit "$rc"
