/* sysinfo_int.h: what sysinfo.c and sysinfo_pci.c share (not public).
 *
 * JSON helpers return 0 or MB_ERR_NOMEM; a fact that cannot be read is
 * written as null with a "<key>_reason" string beside it (mb_si_null).
 */
#ifndef MB_SYSINFO_INT_H
#define MB_SYSINFO_INT_H

#include <cjson/cJSON.h>
#include <hwloc.h>

#include "mb.h"

/* key = null, key_reason = reason. */
int mb_si_null(cJSON *o, const char *key, const char *reason);
/* key = val, or null with reason when val is NULL. */
int mb_si_str(cJSON *o, const char *key, const char *val, const char *reason);
/* key = v, exactly. */
int mb_si_num(cJSON *o, const char *key, double v);
/* Attach item (NULL: out of memory). */
int mb_si_item(cJSON *o, const char *key, cJSON *item);
/* Attach item unless rc or item says it failed; frees it then. */
int mb_si_attach(cJSON *o, const char *key, cJSON *item, int rc);
/* A new object appended to arr, or NULL. */
cJSON *mb_si_push_obj(cJSON *arr);
/* Strip leading and trailing white space in place. */
char *mb_si_trim(char *s);
/* The first line of a file, trimmed; 0 or -errno. */
int mb_si_read_line(const char *path, char *buf, size_t n);
/* key = the integer in a sysfs file (null with the reason if unreadable). */
int mb_si_sys_num(cJSON *o, const char *key, const char *path, int positive);
/* key = the first line of a sysfs file (null with the reason if unreadable). */
int mb_si_sys_str(cJSON *o, const char *key, const char *path);
/* 1 if a device name is safe to put into a path. */
int mb_si_safe_name(const char *s);
/* "accelerators": PCI devices of known accelerator vendors and classes. */
int mb_si_accelerators(cJSON *o, hwloc_topology_t t, const char *why);
/* "nics": network and RDMA devices with their links. */
int mb_si_nics(cJSON *o, hwloc_topology_t t, const char *why);

#endif
