/* cpu_blas.h: the one sgemm call every CPU kernel module goes through. */
#ifndef MB_CPU_BLAS_H
#define MB_CPU_BLAS_H

#include "../../harness/mb.h"

/* C = alpha op(A) op(B) + beta C, row-major, with OpenBLAS's cblas_sgemm;
 * sizes must fit an int (the planners check). k == 0 gives C = beta C here,
 * whatever the library would do; m == 0 or n == 0 does nothing. */
void mb_cpu_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
		  int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* Stop OpenBLAS's worker threads (they restart on the next threaded call):
 * idle workers spin, and on a small machine they take cores from the OpenMP
 * team that runs the element-wise passes. Uses OpenBLAS's exported but
 * undocumented blas_thread_shutdown_ (what it runs itself before fork),
 * looked up once; a no-op where the library lacks it. */
void mb_cpu_blas_idle(void);

#endif
