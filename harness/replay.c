/* replay.c: the cases of a recorded run (replay.h). */
#include "mb.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "replay.h"
#include "result.h"

/* A string member of obj into buf, or MB_ERR_USAGE naming it. */
static int get_str(const char *path, const cJSON *obj, const char *key, char *buf, size_t n)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!cJSON_IsString(x) || !x->valuestring || strlen(x->valuestring) >= n)
		return mb_err(MB_ERR_USAGE, "--replay %s: %s is missing, not a string or too long",
			      path, key);
	memcpy(buf, x->valuestring, strlen(x->valuestring) + 1);
	return 0;
}

/* A whole number in lo..hi, exactly representable. */
static int get_int(const char *path, const cJSON *obj, const char *key, double lo, double hi,
		   double *out)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) ||
	    x->valuedouble < lo || x->valuedouble > hi)
		return mb_err(MB_ERR_USAGE, "--replay %s: %s is missing or not an integer in "
					    "%.0f..%.0f",
			      path, key, lo, hi);
	*out = x->valuedouble;
	return 0;
}

static int replay_config(const char *path, const cJSON *root, int seed_given, mb_replay *rp)
{
	const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(root, "config");
	const cJSON *world = cJSON_GetObjectItemCaseSensitive(root, "world");
	if (!cJSON_IsObject(cfg) || !cJSON_IsObject(world))
		return mb_err(MB_ERR_USAGE, "--replay %s: no config or world object", path);
	double warmup, iters, seed = 0, size;
	int rc = get_str(path, cfg, "backend", rp->backend, sizeof rp->backend);
	if (!rc)
		rc = get_str(path, cfg, "model", rp->model, sizeof rp->model);
	if (!rc)
		rc = get_str(path, cfg, "size", rp->size, sizeof rp->size);
	if (!rc)
		rc = get_str(path, root, "run_id", rp->run_id, sizeof rp->run_id);
	if (!rc)
		rc = get_int(path, cfg, "warmup", 0, 1000000, &warmup);
	if (!rc)
		rc = get_int(path, cfg, "iters", 1, 1000000, &iters);
	if (!rc)
		rc = get_int(path, world, "size", 1, 1 << 24, &size);
	/* a seed above 2^53 was written exactly but a double cannot hold it */
	if (!rc && !seed_given && get_int(path, cfg, "seed", 0, 9007199254740992.0, &seed))
		rc = mb_err(MB_ERR_USAGE, "--replay %s: config.seed is missing or above 2^53, which "
					  "cannot be read back exactly: give it with --seed",
			    path);
	if (rc)
		return rc;
	rp->warmup = (int)warmup;
	rp->iters = (int)iters;
	rp->seed = (uint64_t)seed;
	rp->world_size = (int)size;
	return 0;
}

/* One recorded case: its suite and every parameter, exactly. */
static int replay_case(const mb_registry *reg, const char *path, int i, const cJSON *c,
		       mb_case_spec *out)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "suite");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(c, "params");
	if (!cJSON_IsString(name) || !cJSON_IsObject(params))
		return mb_err(MB_ERR_USAGE, "--replay %s: results[%d] has no suite or params", path,
			      i);
	const mb_suite *su = mb_registry_suite(reg, name->valuestring);
	if (!su)
		return mb_err(MB_ERR_USAGE, "--replay %s: results[%d]: this moebench has no suite "
					    "'%.64s'",
			      path, i, name->valuestring);
	out->suite = su;
	int rc = mb_params_init(&out->params, su->params, su->nparams);
	const cJSON *p;
	cJSON_ArrayForEach(p, params) {
		if (rc)
			break;
		const int k = p->string ? mb_params_find(&out->params, p->string) : -1;
		if (k < 0) {
			rc = mb_err(MB_ERR_USAGE, "--replay %s: results[%d]: suite %s has no parameter "
						  "'%.64s' in this version",
				    path, i, su->name, p->string ? p->string : "");
			break;
		}
		const mb_param_def *d = &su->params[k];
		double v;
		if (cJSON_IsString(p) && d->type == MB_PT_ENUM)
			rc = mb_param_parse_value(d, p->valuestring, &v);
		else if (cJSON_IsNumber(p) && d->type != MB_PT_ENUM && p->valuedouble >= d->min &&
			 p->valuedouble <= d->max)
			v = p->valuedouble;
		else
			rc = mb_err(MB_ERR_USAGE, "--replay %s: results[%d]: %s.%s has a value of the "
						  "wrong type or out of range",
				    path, i, su->name, d->name);
		if (!rc)
			rc = mb_params_set(&out->params, d->name, v, MB_SRC_USER);
	}
	if (!rc && su->validate(&out->params))
		rc = mb_err(MB_ERR_USAGE, "--replay %s: results[%d]: %s", path, i, mb_errmsg());
	return rc;
}

int mb_replay_load(const mb_registry *reg, const char *path, int seed_given, mb_replay *rp,
		   mb_case_spec *out, int max, int *count)
{
	cJSON *root = NULL;
	*count = 0;
	memset(rp, 0, sizeof *rp);
	int rc = mb_result_load(path, &root);
	if (rc) {
		cJSON_Delete(root);
		return mb_err(MB_ERR_USAGE, "--replay %s", mb_errmsg());
	}
	rc = replay_config(path, root, seed_given, rp);
	const cJSON *results = cJSON_GetObjectItemCaseSensitive(root, "results");
	if (!rc && (!cJSON_IsArray(results) || cJSON_GetArraySize(results) == 0))
		rc = mb_err(MB_ERR_USAGE, "--replay %s: the file holds no cases", path);
	const cJSON *c;
	int i = 0;
	cJSON_ArrayForEach(c, results) {
		if (rc)
			break;
		if (i >= max) {
			rc = mb_err(MB_ERR_USAGE, "--replay %s: more than %d cases", path, max);
			break;
		}
		rc = replay_case(reg, path, i, c, &out[i]);
		i++;
	}
	cJSON_Delete(root);
	*count = rc ? 0 : i;
	return rc;
}
