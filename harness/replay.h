/* replay.h: `moebench run --replay FILE`: the configuration a result file
 * recorded, as cases to run again on this machine. */
#ifndef MB_REPLAY_H
#define MB_REPLAY_H

#include "cli.h"
#include "runner.h"

/* What a replay takes from the file besides its cases. */
typedef struct mb_replay {
	char backend[64];   /* config.backend */
	char model[64];     /* config.model */
	char size[32];      /* config.size */
	char run_id[96];    /* the replayed run's run_id */
	uint64_t seed;
	int warmup, iters;
	int world_size;     /* world.size of the recorded run */
} mb_replay;

/* Read path (a moebench result written by anyone: every field checked) and
 * rebuild its cases, every recorded parameter set exactly (source "user"),
 * into out[0..*count). MB_ERR_USAGE with one line naming the file and what
 * is wrong: unreadable, not a result, a suite or parameter this moebench
 * does not have, a value out of range, no cases, a seed that a double
 * cannot hold (then --seed must be given, seed_given). */
int mb_replay_load(const mb_registry *reg, const char *path, int seed_given, mb_replay *rp,
		   mb_case_spec *out, int max, int *count) MB_MUST_CHECK;

#endif
