/* mb.c: the shared helpers declared in mb.h. */
#include "mb.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char err_msg[512];

int mb_err(int code, const char *fmt, ...)
{
	/* through a copy: the arguments may include mb_errmsg() itself */
	char msg[sizeof err_msg];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	memcpy(err_msg, msg, sizeof msg);
	return code;
}

const char *mb_errmsg(void) { return err_msg; }

void mb_err_clear(void) { err_msg[0] = '\0'; }

const char *mb_err_name(int code)
{
	switch (code) {
	case MB_OK: return "ok";
	case MB_ERR_USAGE: return "usage";
	case MB_ERR_NOMEM: return "nomem";
	case MB_ERR_IO: return "io";
	case MB_ERR_UNSUPPORTED: return "unsupported";
	case MB_ERR_DEVICE: return "device";
	case MB_ERR_INVALID: return "invalid";
	default: return "internal";
	}
}

static const struct {
	const char *name;
	size_t size;
} dtypes[MB_DTYPE_COUNT] = {
	[MB_FP32] = {"fp32", 4},
	[MB_BF16] = {"bf16", 2},
	[MB_FP16] = {"fp16", 2},
	[MB_FP64] = {"fp64", 8},
};

size_t mb_dtype_size(mb_dtype t) { return t < MB_DTYPE_COUNT ? dtypes[t].size : 0; }

const char *mb_dtype_name(mb_dtype t) { return t < MB_DTYPE_COUNT ? dtypes[t].name : "?"; }

int mb_dtype_parse(const char *s, mb_dtype *out)
{
	for (int i = 0; i < MB_DTYPE_COUNT; i++)
		if (strcmp(s, dtypes[i].name) == 0) {
			*out = (mb_dtype)i;
			return 0;
		}
	return mb_err(MB_ERR_USAGE, "unknown dtype '%s' (accepted: fp32, bf16, fp16, fp64)", s);
}

uint64_t mb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double mb_now_s(void) { return (double)mb_now_ns() * 1e-9; }

void *mb_alloc(size_t bytes)
{
	void *p = NULL;
	if (bytes == 0)
		bytes = 64;
	if (posix_memalign(&p, 64, bytes) != 0)
		return NULL;
	return p;
}

void *mb_calloc(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *p = mb_alloc(n * size);
	if (p)
		memset(p, 0, n * size > 0 ? n * size : 64);
	return p;
}

void mb_free(void *p) { free(p); }

void mb_strlcpy(char *dst, const char *src, size_t n)
{
	if (n == 0)
		return;
	size_t len = strlen(src);
	if (len >= n)
		len = n - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}
