/* mb.h: the umbrella header every moebench file includes first.
 *
 * Error codes, the error-message slot, data types and small helpers that every
 * module shares. Nothing here knows about suites, backends or MPI.
 */
#ifndef MB_H
#define MB_H

#include <stddef.h>
#include <stdint.h>

#define MB_VERSION "0.1.0"
#define MB_SCHEMA "moebench.result/1"

#define MB_MUST_CHECK __attribute__((warn_unused_result))
#define MB_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define MB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Functions that can fail return 0 or one of these (negative). */
enum {
	MB_OK = 0,
	MB_ERR_USAGE = -1,       /* bad input from the user: exit 2 */
	MB_ERR_NOMEM = -2,       /* allocation failed */
	MB_ERR_IO = -3,          /* file or system call failed */
	MB_ERR_UNSUPPORTED = -4, /* the backend cannot do this: case skipped */
	MB_ERR_DEVICE = -5,      /* the device or its library failed */
	MB_ERR_INVALID = -6,     /* a result failed its check */
	MB_ERR_INTERNAL = -7,    /* a bug in moebench */
};

/* Process exit codes (DESIGN §8). */
enum {
	MB_EXIT_OK = 0,
	MB_EXIT_FAIL = 1,  /* some case invalid or errored, or a regression */
	MB_EXIT_USAGE = 2, /* usage or input error */
	MB_EXIT_NODEV = 3, /* backend or device unavailable */
	MB_EXIT_TIMEOUT = 4, /* a rank made no progress within --timeout (the watchdog) */
};

/* Record the message for the failure being returned; returns code so that
 * `return mb_err(MB_ERR_USAGE, "...")` reads naturally. The message is kept in
 * a thread-local slot until the next mb_err call. */
int mb_err(int code, const char *fmt, ...) MB_PRINTF(2, 3);
/* The last message recorded on this thread ("" if none). */
const char *mb_errmsg(void);
/* Clear the slot. */
void mb_err_clear(void);
/* A short name for a code: "usage", "nomem", ... */
const char *mb_err_name(int code);

/* Element types the workloads run in. */
typedef enum { MB_FP32 = 0, MB_BF16, MB_FP16, MB_FP64, MB_DTYPE_COUNT } mb_dtype;

/* bf16 <-> fp32. Rounding is to nearest even; a NaN stays a (quiet) NaN. */
static inline uint16_t mb_bf16_round(float f)
{
	union {
		float f;
		uint32_t u;
	} v = {.f = f};
	if ((v.u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((v.u >> 16) | 0x40);
	v.u += 0x7fffu + ((v.u >> 16) & 1u);
	return (uint16_t)(v.u >> 16);
}

static inline float mb_bf16_widen(uint16_t b)
{
	union {
		uint32_t u;
		float f;
	} v = {.u = (uint32_t)b << 16};
	return v.f;
}

size_t mb_dtype_size(mb_dtype t);
const char *mb_dtype_name(mb_dtype t);
/* Parse "fp32", "bf16", ...; returns 0 or MB_ERR_USAGE. */
int mb_dtype_parse(const char *s, mb_dtype *out) MB_MUST_CHECK;

/* Seconds on the monotonic clock. */
double mb_now_s(void);
/* Nanoseconds on the monotonic clock. */
uint64_t mb_now_ns(void);

/* Allocation that returns NULL on failure (the caller reports it). Aligned
 * to 64 bytes; release with mb_free. */
void *mb_alloc(size_t bytes);
void *mb_calloc(size_t n, size_t size);
void mb_free(void *p);

/* Copy at most n-1 bytes and always terminate. */
void mb_strlcpy(char *dst, const char *src, size_t n);

#endif
