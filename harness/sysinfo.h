/* sysinfo.h: what machine, what build, what environment a result came from.
 *
 * Each function returns a new cJSON object (caller deletes) or NULL on
 * allocation failure; a fact that cannot be read is null with a reason
 * beside it, never a guess. Documented field by field in results/SCHEMA.md.
 */
#ifndef MB_SYSINFO_H
#define MB_SYSINFO_H

#include <cjson/cJSON.h>

#include "mb.h"

/* Host inventory: hostname, os, kernel, cpu model, sockets, cores, PUs,
 * NUMA nodes, memory, caches, PCI accelerators and NICs (hwloc). */
cJSON *mb_sysinfo_system(void);

/* Build facts: moebench version, git commit and dirty flag, compiler and
 * flags, library versions (OpenBLAS, MPI, hwloc, cJSON). */
cJSON *mb_sysinfo_build(void);

/* The allow-listed environment: thread counts, visible devices, NCCL_,
 * HCCL_, OMPI_, SLURM_ and MOEBENCH_ variables; never anything else. */
cJSON *mb_sysinfo_environment(void);

/* 1 if the environment variable name may be recorded. */
int mb_env_allowed(const char *name);

#endif
