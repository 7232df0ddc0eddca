#!/bin/sh
# Fuzz the result reader and `moebench check` (tests/fuzz/fuzz_result.c):
# build the libFuzzer target with clang, ASan and UBSan, then run it.
#
#   ci/fuzz.sh [SECONDS] [libFuzzer flags ...]     (default 60 s)
#
# Seeds: tests/fuzz/corpus (left as they are); inputs that find new
# coverage go to $FUZZ_BUILD/corpus, crashes to $FUZZ_BUILD/artifacts/ (the
# script then exits non-zero). Not part of `make test`, which replays the
# seed corpus through the same code (tests/unit/test_check.c). Needs clang
# (14 here) with its libFuzzer runtime, and pkg-config's libcjson.
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-60}
[ $# -gt 0 ] && shift
OUT=${FUZZ_BUILD:-build-fuzz}
CC=${FUZZ_CC:-clang}
mkdir -p "$OUT/corpus" "$OUT/artifacts"

# What the reader and the check link against: the harness core, the suites
# (their parameter tables and cost formulas), the published peaks.
SRC="harness/mb.c harness/params.c harness/stats.c harness/result.c harness/check.c
     harness/device.c hardware/specs/specs.c $(ls suites/*.c) tests/fuzz/fuzz_result.c"
# -Wno-pass-failed: clang reports `omp simd` loops it did not vectorise
# (as the Makefile says); -fno-sanitize-recover: any UB report is a crash.
# shellcheck disable=SC2086
$CC -std=c11 -Wall -Wextra -Werror -Wno-pass-failed -O1 -g -fno-omit-frame-pointer \
    -D_GNU_SOURCE -fopenmp -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    $(pkg-config --cflags libcjson) -I. $SRC -o "$OUT/fuzz_result" \
    $(pkg-config --libs libcjson) -lm

echo "fuzzing for $SECS s: $OUT/fuzz_result"
OMP_NUM_THREADS=1 UBSAN_OPTIONS=print_stacktrace=1 \
	"$OUT/fuzz_result" -max_total_time="$SECS" -print_final_stats=1 \
	-dict=tests/fuzz/result.dict -artifact_prefix="$OUT/artifacts/" "$@" \
	"$OUT/corpus" tests/fuzz/corpus
