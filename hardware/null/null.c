/* null.c: a fake device whose ops do nothing, for testing the harness.
 *
 * Every op is "supported" and every launch returns at once, so a run on the
 * null backend times the runner and the suite's launch sequence alone. Its
 * outputs are never computed, so the runner marks its cases invalid (see
 * runner.c): a null run can never pass for a measurement.
 * Memory is real host memory so that setup and download paths are exercised.
 */
#include "../../harness/mb.h"

#include <stdlib.h>
#include <string.h>

#include "../backend.h"

struct mb_dev {
	int open_plans;    /* plans not yet freed: the contract test checks it */
	uint64_t delay_ns; /* MOEBENCH_NULL_DELAY_US: spun in every sync */
};

struct mb_plan {
	mb_op op;
};

static int null_probe(char *why, size_t n)
{
	mb_strlcpy(why, "always present", n);
	return 1;
}

static int null_open(mb_dev **out)
{
	*out = calloc(1, sizeof **out);
	if (!*out)
		return mb_err(MB_ERR_NOMEM, "null backend: out of memory");
	const char *d = getenv("MOEBENCH_NULL_DELAY_US");
	char *end;
	const unsigned long long us = d ? strtoull(d, &end, 10) : 0;
	if (d && (end == d || *end || us > 60000000ull)) {
		free(*out);
		*out = NULL;
		return mb_err(MB_ERR_USAGE, "MOEBENCH_NULL_DELAY_US='%s' is not an integer in "
					    "0..60000000 (microseconds)",
			      d);
	}
	(*out)->delay_ns = us * 1000u;
	return 0;
}

static void null_close(mb_dev *dev) { free(dev); }

static void null_describe(mb_dev *dev, mb_dev_info *out)
{
	(void)dev;
	memset(out, 0, sizeof *out);
	out->name = "null device";
	out->kind = "none";
	out->library = "none";
}

static void *null_alloc(mb_dev *dev, size_t bytes)
{
	(void)dev;
	return mb_calloc(1, bytes);
}

static void null_free(mb_dev *dev, void *p)
{
	(void)dev;
	mb_free(p);
}

static int null_copy(mb_dev *dev, void *dst, const void *src, size_t bytes)
{
	(void)dev;
	memcpy(dst, src, bytes);
	return 0;
}

/* A known cost per iteration, so a test can slow a run by an exact amount
 * (ci/bench-compare.sh): a spin on the monotonic clock, not a sleep, which
 * would overshoot by the timer slack. */
static int null_sync(mb_dev *dev)
{
	const uint64_t t0 = dev->delay_ns ? mb_now_ns() : 0;
	while (dev->delay_ns && mb_now_ns() - t0 < dev->delay_ns)
		;
	return 0;
}

static int null_supports(mb_dev *dev, const mb_op *op)
{
	(void)dev;
	if ((unsigned)op->kind >= MB_OP_COUNT)
		return mb_err(MB_ERR_UNSUPPORTED, "null backend: unknown op %d", (int)op->kind);
	return 0;
}

static int null_plan(mb_dev *dev, const mb_op *op, mb_plan **out)
{
	*out = malloc(sizeof **out);
	if (!*out)
		return mb_err(MB_ERR_NOMEM, "null backend: out of memory");
	(*out)->op = *op;
	dev->open_plans++;
	return 0;
}

static int null_launch(mb_dev *dev, mb_plan *plan, const mb_io *io)
{
	(void)dev;
	(void)plan;
	(void)io;
	return 0;
}

static void null_plan_free(mb_dev *dev, mb_plan *plan)
{
	if (!plan)
		return;
	dev->open_plans--;
	free(plan);
}

const mb_backend mb_backend_null = {
	.abi = MB_BACKEND_ABI,
	.name = "null",
	.summary = "a fake device whose ops do nothing: tests and times the harness itself",
	.probe = null_probe,
	.open = null_open,
	.close = null_close,
	.describe = null_describe,
	.mem_alloc = null_alloc,
	.mem_free = null_free,
	.upload = null_copy,
	.download = null_copy,
	.sync = null_sync,
	.supports = null_supports,
	.plan = null_plan,
	.launch = null_launch,
	.plan_free = null_plan_free,
};
