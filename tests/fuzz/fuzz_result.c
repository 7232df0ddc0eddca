/* fuzz_result.c: libFuzzer target for the result reader and its walk.
 *
 * Every input goes through what `moebench check` does with a file: it is
 * written to a memfd and read back by mb_result_load (the reader `moebench
 * report` uses too: size bound, parse, schema string), then walked and
 * re-derived by mb_check_result with every finding formatted. Any crash,
 * sanitizer report or leak is a bug. How to build and run it:
 * tests/fuzz/README.md (ci/fuzz.sh).
 */
#include "harness/mb.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness/check.h"
#include "harness/result.h"

static const mb_suite *const suites[] = {&mb_suite_attention, &mb_suite_gmm, &mb_suite_alltoall,
					 &mb_suite_train_step, &mb_suite_gemm};

/* Findings are formatted (check.c builds the line before this call); touch
 * them so that a bad string would show. */
static void sink(void *ctx, mb_find_kind kind, const char *path, const char *msg)
{
	size_t *n = ctx;
	*n += strlen(path) + strlen(msg) + (size_t)kind;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	if (fd < 0) {
		fd = memfd_create("fuzz_result", 0);
		if (fd < 0)
			abort();
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	cJSON *root = NULL;
	if (mb_result_load(path, &root) == 0) {
		size_t n = 0;
		/* a small routing budget: an alltoall case stays well under 10 ms */
		mb_check_opts o = {.suites = suites, .nsuites = (int)MB_ARRAY_LEN(suites),
				   .route_limit = 1e5, .emit = sink, .ctx = &n};
		mb_check_sum s;
		if (mb_check_result(root, &o, &s))
			abort(); /* only out of memory fails, and the inputs are small */
	}
	cJSON_Delete(root);
	return 0;
}
