/* power_int.h: the interface between the power sampler (power.c) and its
 * sources (power_sysfs.c, power_lib.c, power_cmd.c). Not public.
 *
 * A source is a const table of open/read/close. The sampler serialises
 * every call on one source, so a source needs no locking of its own.
 */
#ifndef MB_POWER_INT_H
#define MB_POWER_INT_H

#include <stddef.h>

#include "power.h"

/* What open says about a source that works. */
typedef struct mb_pw_info {
	const char *scope; /* static; set to the table's scope before open */
	int counter;       /* 1: read gives J counted since open; 0: W now */
	char detail[192];  /* what is read: devices, zones, sensors */
} mb_pw_info;

typedef struct mb_pw_ops {
	const char *name;  /* the reading's "source" and the listing's "name" */
	const char *scope; /* the usual scope; open may refine info->scope */
	/* Probe. 0: available, *st and *info filled. 1: not available, why
	 * filled. <0: MB_ERR_* (bad option, out of memory), recorded with
	 * mb_err; the sampler fails to open. period_s is the sample period. */
	int (*open)(const mb_power_opts *o, double period_s, void **st, mb_pw_info *info,
		    char *why, size_t n);
	/* One reading into *v (J since open or W, as info->counter says);
	 * 0, or -1 with why. */
	int (*read)(void *st, double *v, char *why, size_t n);
	void (*close)(void *st);
} mb_pw_ops;

extern const mb_pw_ops mb_pw_cmd, mb_pw_nvml, mb_pw_dcmi, mb_pw_rapl, mb_pw_hwmon;

#endif
