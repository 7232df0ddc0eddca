/* test_null.c: the null backend honours the backend contract (backend.h),
 * and the mb_dev_* wrappers handle missing members. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "hardware/backend.h"

static void test_lifecycle(void **st)
{
	(void)st;
	const mb_backend *be = &mb_backend_null;
	char why[64];
	assert_int_equal(be->abi, MB_BACKEND_ABI);
	assert_int_equal(be->probe(why, sizeof why), 1);
	mb_dev *dev;
	assert_int_equal(mb_dev_open(be, &dev), 0);
	mb_dev_info info;
	be->describe(dev, &info);
	assert_string_equal(info.kind, "none");

	float src[16], back[16];
	for (int i = 0; i < 16; i++)
		src[i] = (float)i;
	float *d = mb_dev_alloc(be, dev, sizeof src);
	assert_non_null(d);
	assert_int_equal(mb_dev_upload(be, dev, d, src, sizeof src), 0);
	assert_int_equal(mb_dev_download(be, dev, back, d, sizeof src), 0);
	assert_memory_equal(src, back, sizeof src);

	/* Every op kind plans, launches and frees. */
	mb_plan *plans[MB_OP_COUNT];
	for (int k = 0; k < MB_OP_COUNT; k++) {
		mb_op op = {.kind = (mb_op_kind)k, .dtype = MB_FP32};
		assert_int_equal(mb_dev_plan(be, dev, &op, &plans[k]), 0);
		mb_io io;
		memset(&io, 0, sizeof io);
		assert_int_equal(mb_dev_launch(be, dev, plans[k], &io), 0);
	}
	assert_int_equal(mb_dev_sync(be, dev), 0);
	mb_op bad = {.kind = MB_OP_COUNT};
	mb_plan *p = (mb_plan *)1;
	assert_int_equal(mb_dev_plan(be, dev, &bad, &p), MB_ERR_UNSUPPORTED);
	assert_null(p);
	for (int k = 0; k < MB_OP_COUNT; k++)
		mb_dev_plan_free(be, dev, plans[k]);
	mb_dev_plan_free(be, dev, NULL); /* frees accept NULL */
	mb_dev_free(be, dev, d);
	mb_dev_free(be, dev, NULL);
	mb_dev_close(be, dev);
	mb_dev_close(be, NULL);
}

static void test_missing_members(void **st)
{
	(void)st;
	const mb_backend empty = {.abi = MB_BACKEND_ABI, .name = "empty"};
	mb_dev *dev = (mb_dev *)1;
	assert_int_equal(mb_dev_open(&empty, &dev), MB_ERR_UNSUPPORTED);
	assert_null(dev);
	mb_op op = {.kind = MB_OP_GEMM};
	mb_plan *p;
	assert_int_equal(mb_dev_plan(&empty, NULL, &op, &p), MB_ERR_UNSUPPORTED);
	assert_non_null(strstr(mb_errmsg(), "empty"));
	assert_null(mb_dev_alloc(&empty, NULL, 16));
	assert_int_equal(mb_dev_sync(&empty, NULL), 0); /* no sync means synchronous */
	const mb_backend old = {.abi = MB_BACKEND_ABI + 1, .name = "old"};
	assert_int_equal(mb_dev_open(&old, &dev), MB_ERR_INTERNAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifecycle),
		cmocka_unit_test(test_missing_members),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
