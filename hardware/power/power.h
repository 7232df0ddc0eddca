/* power.h: the power sampler: energy and power of a timed region.
 *
 * One sampler per process. mb_power_open probes every source, chooses one
 * and starts a thread that sleeps until mb_power_start; it then reads the
 * source every 1/hz seconds (CLOCK_MONOTONIC) until mb_power_stop, which
 * returns one reading for the region. The thread lives until mb_power_close.
 *
 * Sources, in the order of choice (the first available one is used; all are
 * probed and listed by mb_power_sources_json, with the reason when not
 * available):
 *   "power-cmd"  scope "external": --power-cmd CMD, when given. An explicit
 *                request wins over anything found on the machine. CMD is
 *                split on white space into an argv (no shell) and run per
 *                reading; its stdout must be one finite non-negative number
 *                of watts. A run that takes longer than cmd_timeout_s
 *                (default: 2 s or the sample period, whichever is larger) is
 *                killed with its process group and counts as a failed
 *                reading, as does any other output or a non-zero exit.
 *   "nvml"       scope "accelerator board": libnvidia-ml.so.1 through
 *                dlopen; nvmlDeviceGetTotalEnergyConsumption (mJ) when every
 *                selected GPU has it, else nvmlDeviceGetPowerUsage (mW; a
 *                1 s average on Ampere and later); summed over the GPUs in
 *                devices ("0,2": NVML's indices, not CUDA_VISIBLE_DEVICES'),
 *                or over all of them.
 *   "dcmi"       scope "accelerator board": Ascend libdcmi.so through
 *                dlopen; dcmi_get_device_power_info (0.1 W) summed over
 *                every chip of every card.
 *   "rapl"       scope "cpu package": <sysfs>/class/powercap/intel-rapl:N
 *                whose name is package-*, energy_uj (uJ) summed over
 *                packages. Subzones (core, uncore, dram: intel-rapl:N:M),
 *                psys and intel-rapl-mmio are left out: they count again
 *                what a package counts. energy_uj is root-only since Linux
 *                5.10 (CVE-2020-8694): EACCES makes the source unavailable.
 *   "hwmon"      <sysfs>/class/hwmon/hwmon*: energy*_input (uJ) when any
 *                exists, else power*_input (uW), or power*_average (uW)
 *                where a sensor has no _input, summed. When a chip named
 *                power_meter (ACPI) has sensors, only its are used and the
 *                scope is "node"; otherwise "hwmon sensors" (the sum of
 *                whatever the chips measure: see the detail).
 *
 * Counter sources (rapl, hwmon energy, nvml energy) are read in
 * mb_power_start and mb_power_stop as well as by the thread, so even a
 * region of a few ms gets its energy: energy_j = E(stop) - E(start), and
 * avg_w = energy_j / duration_s. RAPL counters wrap at max_energy_range_uj:
 * a reading below the previous one adds (max - prev) + now; a counter
 * without a known range that goes backwards is a failed reading. At most
 * one wrap between two reads of a region is assumed (they are a period
 * apart; what happens between regions does not matter, since a region only
 * sums the differences between its own reads).
 * peak_w is the largest average power over an interval between readings
 * at least half a period apart (so that counter update steps do not read as
 * spikes), or over the whole region when it is shorter than that.
 *
 * Power sources (power-cmd, nvml power, dcmi, hwmon power) are sampled by
 * the thread, the first reading at start. energy_j is the trapezoid
 * integral of the samples, holding the first and last values to the
 * region's edges; avg_w = energy_j / duration_s; peak_w the largest sample.
 *
 * samples counts the good readings in the region (the start and stop reads
 * of a counter included); failed counts the others. rate_hz = samples /
 * max(duration_s, 1/hz), so a region shorter than a period does not claim a
 * rate above the one asked for. insufficient is set when rate_hz < 1, or,
 * for a power source, when more than 2 s of the region passed without a
 * good reading (a sensor that died part way): the figures are then
 * measurements, but too sparse to trust.
 *
 * valid is 0, with the reason, when there is no source (source "none", the
 * reason listing why each source is unavailable); for a power source, when
 * no reading in the region succeeded; for a counter source, when any read
 * in the region failed (the counter was not followed throughout, so a wrap
 * or a reset may have been missed) or the counter did not move (a region
 * shorter than its update interval). A power source's failed readings are
 * left out of the integral and counted and named in reason; fewer than 2
 * samples and insufficiency are named there too when the reading is valid.
 *
 * Threading: the calls are made from one thread. start and stop do not wait
 * for a reading in flight on the sampler thread (one that ends after stop
 * is dropped, and a region where none finished says so); they block only
 * for a direct counter read, which may wait for the thread's own counter
 * read to end. close waits for a command in flight (at most cmd_timeout_s).
 */
#ifndef MB_POWER_H
#define MB_POWER_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "harness/mb.h"

typedef struct mb_power mb_power; /* opaque: the chosen source and the thread */

typedef struct mb_power_opts {
	const char *sysfs_root; /* NULL: "/sys" */
	double hz;              /* sampling rate, 0 < hz <= 1000; 0: default 10 */
	const char *cmd;        /* --power-cmd, or NULL */
	double cmd_timeout_s;   /* 0: max(2 s, 1/hz) */
	const char *devices;    /* NVML only: indices "0,2"; NULL: every GPU */
	const char *nvml_lib;   /* NULL: "libnvidia-ml.so.1" (tests name a missing one) */
	const char *dcmi_lib;   /* NULL: "libdcmi.so" */
} mb_power_opts;

typedef struct mb_power_reading {
	int valid;         /* 1 if avg_w/energy_j are measurements */
	char source[48], scope[32]; /* a source's name ("none" without one), its scope */
	int64_t samples;   /* good readings in the region */
	int64_t failed;    /* failed readings in the region */
	int from_counter;  /* 1: energy_j from an energy counter; 0: integrated power */
	double rate_hz, duration_s, avg_w, peak_w, energy_j; /* NAN when unknown */
	double max_gap_s;  /* power sources: longest stretch without a good reading, s */
	int insufficient;  /* sampled too sparsely (see above) */
	char reason[512];  /* why not valid, or warnings ("" when fine) */
} mb_power_reading;

/* Probe the sources and start the (idle) sampler thread. Never fails for
 * lack of sources: every reading is then invalid with the reason.
 * MB_ERR_USAGE for a bad hz, timeout, devices list or an empty or overlong
 * cmd; MB_ERR_NOMEM, MB_ERR_IO (thread). *out is the caller's, for
 * mb_power_close. The option strings are not kept. */
int mb_power_open(const mb_power_opts *o, mb_power **out) MB_MUST_CHECK;

/* One object per source probed, in the order of choice: {"name", "scope",
 * "available": bool, "chosen": bool, "reason" (not available) or "detail"}.
 * Caller deletes; NULL when out of memory. */
cJSON *mb_power_sources_json(const mb_power *p);

/* Begin a region: the thread samples until stop. MB_ERR_USAGE if a region
 * is open. */
int mb_power_start(mb_power *p) MB_MUST_CHECK;

/* End the region and fill *out (always filled when 0 is returned, valid or
 * not). MB_ERR_USAGE if no region is open. */
int mb_power_stop(mb_power *p, mb_power_reading *out) MB_MUST_CHECK;

/* Stop the thread, close the source, free p. NULL is fine. */
void mb_power_close(mb_power *p);

#endif
