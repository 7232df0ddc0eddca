/* power_lib.c: the power sources behind vendor libraries, loaded with
 * dlopen and declared here (no vendor headers): NVML and Ascend DCMI.
 *
 * NVML prototypes: NVIDIA/go-nvml pkg/nvml/nvml.h (the _v2 names are the
 * ones the real header maps the plain names to). DCMI prototypes and the
 * 0.1 W unit: the Ascend 910B DCMI API reference
 * (dcmi_get_device_power_info.md) and dcmi_interface_api.h; see
 * shared/reference/ecosystem.md §5.3 and §5.5.
 */
#include "harness/mb.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "power_int.h"

#define LIB_MAX_DEV 64

/* Fill why; returns 1 (not available). */
static int MB_PRINTF(3, 4) lib_fail(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return 1;
}

/* ---- NVML ---- */

typedef struct nvml_device *nvml_dev;

typedef struct nvml_src {
	void *lib;
	int inited, counter, n;
	int (*shutdown)(void);
	int (*power)(nvml_dev, unsigned int *);
	int (*energy)(nvml_dev, unsigned long long *);
	const char *(*errstr)(int);
	nvml_dev dev[LIB_MAX_DEV];
	unsigned idx[LIB_MAX_DEV];
	unsigned long long prev;  /* counter: the mJ sum at the last read */
	unsigned long long total; /* counter: mJ counted since open */
} nvml_src;

static const char *nvml_str(const nvml_src *s, int rc)
{
	return s->errstr ? s->errstr(rc) : "error";
}

/* "0,2,5" into idx; NULL or "" selects every GPU (*n = 0). */
static int nvml_parse_devices(const char *list, unsigned *idx, int *n)
{
	const char *p = list;
	*n = 0;
	while (p && *p) {
		char *end;
		unsigned long v;
		errno = 0;
		v = strtoul(p, &end, 10);
		if (end == p || errno || v > 65535 || (*end && *end != ',') || *n == LIB_MAX_DEV)
			return mb_err(MB_ERR_USAGE, "power devices \"%s\": expected GPU indices "
						    "like 0,2 (at most %d)", list, LIB_MAX_DEV);
		idx[(*n)++] = (unsigned)v;
		p = *end ? end + 1 : end;
	}
	return 0;
}

static void nvml_close(void *st)
{
	nvml_src *s = st;
	if (!s)
		return;
	if (s->inited)
		s->shutdown();
	if (s->lib)
		dlclose(s->lib);
	free(s);
}

static int nvml_bind(nvml_src *s, int (**init)(void), int (**count)(unsigned int *),
		     int (**handle)(unsigned int, nvml_dev *))
{
	*init = (int (*)(void))dlsym(s->lib, "nvmlInit_v2");
	*count = (int (*)(unsigned int *))dlsym(s->lib, "nvmlDeviceGetCount_v2");
	*handle = (int (*)(unsigned int, nvml_dev *))dlsym(s->lib, "nvmlDeviceGetHandleByIndex_v2");
	s->shutdown = (int (*)(void))dlsym(s->lib, "nvmlShutdown");
	s->power = (int (*)(nvml_dev, unsigned int *))dlsym(s->lib, "nvmlDeviceGetPowerUsage");
	s->energy = (int (*)(nvml_dev, unsigned long long *))dlsym(
		s->lib, "nvmlDeviceGetTotalEnergyConsumption");
	s->errstr = (const char *(*)(int))dlsym(s->lib, "nvmlErrorString");
	return *init && *count && *handle && s->shutdown && s->power;
}

/* The GPUs to read: the listed ones, or all; 0, or 1 with why. */
static int nvml_devices(nvml_src *s, int (*count)(unsigned int *),
			int (*handle)(unsigned int, nvml_dev *), char *why, size_t n)
{
	unsigned int total = 0;
	int rc = count(&total);
	if (rc)
		return lib_fail(why, n, "nvmlDeviceGetCount: %s", nvml_str(s, rc));
	if (total == 0)
		return lib_fail(why, n, "NVML sees no GPU");
	if (s->n == 0)
		for (unsigned i = 0; i < total && i < LIB_MAX_DEV; i++)
			s->idx[s->n++] = i;
	for (int i = 0; i < s->n; i++) {
		if (s->idx[i] >= total)
			return lib_fail(why, n, "GPU %u asked for, NVML sees %u", s->idx[i], total);
		if ((rc = handle(s->idx[i], &s->dev[i])))
			return lib_fail(why, n, "GPU %u: nvmlDeviceGetHandleByIndex: %s", s->idx[i],
					nvml_str(s, rc));
	}
	return 0;
}

/* Sum over the GPUs: mJ from the energy counters, or mW now. */
static int nvml_sum(nvml_src *s, unsigned long long *sum, char *why, size_t n)
{
	*sum = 0;
	for (int i = 0; i < s->n; i++) {
		unsigned long long mj = 0;
		unsigned int mw = 0;
		int rc = s->counter ? s->energy(s->dev[i], &mj) : s->power(s->dev[i], &mw);
		if (rc) {
			snprintf(why, n, "GPU %u: %s: %s", s->idx[i],
				 s->counter ? "nvmlDeviceGetTotalEnergyConsumption"
					    : "nvmlDeviceGetPowerUsage", nvml_str(s, rc));
			return -1;
		}
		*sum += s->counter ? mj : mw;
	}
	return 0;
}

/* Energy counters when every GPU has one (Volta and later), else power. */
static int nvml_mode(nvml_src *s, mb_pw_info *info, char *why, size_t n)
{
	char spare[8];
	s->counter = s->energy != NULL;
	if (s->counter && nvml_sum(s, &s->prev, spare, sizeof spare))
		s->counter = 0;
	if (!s->counter && nvml_sum(s, &s->prev, why, n))
		return 1;
	info->counter = s->counter;
	snprintf(info->detail, sizeof info->detail, "%d GPU%s, %s", s->n, s->n > 1 ? "s" : "",
		 s->counter ? "energy counters (mJ)" : "power (mW; a 1 s average on Ampere and later)");
	return 0;
}

static int nvml_open(const mb_power_opts *o, double period_s, void **st, mb_pw_info *info,
		     char *why, size_t n)
{
	const char *name = o->nvml_lib ? o->nvml_lib : "libnvidia-ml.so.1";
	int (*init)(void), (*count)(unsigned int *), (*handle)(unsigned int, nvml_dev *);
	nvml_src *s = calloc(1, sizeof *s);
	int rc;
	(void)period_s;
	if (!s)
		return mb_err(MB_ERR_NOMEM, "power: out of memory");
	if ((rc = nvml_parse_devices(o->devices, s->idx, &s->n))) {
		free(s);
		return rc;
	}
	if (!(s->lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)))
		rc = lib_fail(why, n, "%s", dlerror());
	else if (!nvml_bind(s, &init, &count, &handle))
		rc = lib_fail(why, n, "%s lacks an NVML function this needs", name);
	else if ((rc = init()))
		rc = lib_fail(why, n, "nvmlInit: %s", nvml_str(s, rc));
	else {
		s->inited = 1;
		rc = nvml_devices(s, count, handle, why, n) || nvml_mode(s, info, why, n);
	}
	if (rc) {
		nvml_close(s);
		return 1;
	}
	*st = s;
	return 0;
}

static int nvml_read(void *st, double *v, char *why, size_t n)
{
	nvml_src *s = st;
	unsigned long long sum;
	if (nvml_sum(s, &sum, why, n))
		return -1;
	if (!s->counter) {
		*v = (double)sum * 1e-3;
		return 0;
	}
	if (sum < s->prev) { /* a driver reload restarts the counters */
		snprintf(why, n, "NVML energy went backwards (%llu mJ after %llu)", sum, s->prev);
		s->prev = sum;
		return -1;
	}
	s->total += sum - s->prev;
	s->prev = sum;
	*v = (double)s->total * 1e-3;
	return 0;
}

const mb_pw_ops mb_pw_nvml = {
	.name = "nvml",
	.scope = "accelerator board",
	.open = nvml_open,
	.read = nvml_read,
	.close = nvml_close,
};

/* ---- Ascend DCMI ---- */

typedef struct dcmi_src {
	int (*power)(int card, int chip, int *deciwatts);
	int n;
	int card[LIB_MAX_DEV], chip[LIB_MAX_DEV];
} dcmi_src;

/* Every chip of every card into s; 0, or 1 with why. */
static int dcmi_chips(dcmi_src *s, void *lib, char *why, size_t n)
{
	int (*init)(void) = (int (*)(void))dlsym(lib, "dcmi_init");
	int (*cards)(int *, int *, int) = (int (*)(int *, int *, int))dlsym(lib, "dcmi_get_card_num_list");
	int (*chips)(int, int *, int *, int *) =
		(int (*)(int, int *, int *, int *))dlsym(lib, "dcmi_get_device_id_in_card");
	int list[LIB_MAX_DEV], ncard = 0, rc;
	s->power = (int (*)(int, int, int *))dlsym(lib, "dcmi_get_device_power_info");
	if (!init || !cards || !chips || !s->power)
		return lib_fail(why, n, "the library lacks a DCMI function this needs");
	if ((rc = init()))
		return lib_fail(why, n, "dcmi_init: error %d", rc);
	if ((rc = cards(&ncard, list, LIB_MAX_DEV)))
		return lib_fail(why, n, "dcmi_get_card_num_list: error %d", rc);
	for (int c = 0; c < ncard && c < LIB_MAX_DEV; c++) {
		int nchip = 0, mcu, cpu;
		if ((rc = chips(list[c], &nchip, &mcu, &cpu)))
			return lib_fail(why, n, "card %d: dcmi_get_device_id_in_card: error %d",
					list[c], rc);
		for (int d = 0; d < nchip && s->n < LIB_MAX_DEV; d++, s->n++) {
			s->card[s->n] = list[c];
			s->chip[s->n] = d;
		}
	}
	return s->n ? 0 : lib_fail(why, n, "DCMI sees no NPU");
}

static int dcmi_read(void *st, double *v, char *why, size_t n)
{
	dcmi_src *s = st;
	long long sum = 0;
	for (int i = 0; i < s->n; i++) {
		int dw = 0, rc = s->power(s->card[i], s->chip[i], &dw);
		if (rc || dw < 0) {
			snprintf(why, n, "card %d chip %d: dcmi_get_device_power_info: %s %d",
				 s->card[i], s->chip[i], rc ? "error" : "negative power", rc ? rc : dw);
			return -1;
		}
		sum += dw;
	}
	*v = (double)sum * 0.1;
	return 0;
}

static void dcmi_close(void *st) { free(st); }

/* DCMI has no call that undoes dcmi_init, and unloading a driver library
 * that may have started threads is unsafe, so the library stays loaded. */
static int dcmi_open(const mb_power_opts *o, double period_s, void **st, mb_pw_info *info,
		     char *why, size_t n)
{
	const char *name = o->dcmi_lib ? o->dcmi_lib : "libdcmi.so";
	void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	dcmi_src *s;
	double w;
	(void)period_s;
	if (!lib)
		return lib_fail(why, n, "%s", dlerror());
	if (!(s = calloc(1, sizeof *s)))
		return mb_err(MB_ERR_NOMEM, "power: out of memory");
	if (dcmi_chips(s, lib, why, n) || dcmi_read(s, &w, why, n)) {
		free(s);
		return 1;
	}
	snprintf(info->detail, sizeof info->detail, "%d NPU chip%s, power (0.1 W)", s->n,
		 s->n > 1 ? "s" : "");
	*st = s;
	return 0;
}

const mb_pw_ops mb_pw_dcmi = {
	.name = "dcmi",
	.scope = "accelerator board",
	.open = dcmi_open,
	.read = dcmi_read,
	.close = dcmi_close,
};
