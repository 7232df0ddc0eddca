/* suite.c: helpers shared by every suite (suite.h). */
#include "../harness/mb.h"

#include "suite.h"

void mb_info_add(mb_case_info *info, const char *key, double val)
{
	if (info->n >= MB_INFO_MAX)
		return;
	mb_strlcpy(info->kv[info->n].key, key, sizeof info->kv[0].key);
	info->kv[info->n].val = val;
	info->n++;
}

int mb_group_sizes(const char *suite, int world_size, int *ep, int *dp)
{
	const int ep0 = *ep, dp0 = *dp;
	if (*ep == 0 && *dp == 0)
		*ep = world_size;
	if (*ep == 0)
		*ep = world_size / *dp;
	if (*dp == 0)
		*dp = world_size / *ep;
	if (*ep < 1 || *dp < 1 || (int64_t)*ep * *dp != world_size)
		return mb_err(MB_ERR_USAGE,
			      "%s: ep=%d dp=%d do not fit %d rank%s: accepted ep x dp = %d (0 derives "
			      "one from the other)",
			      suite, ep0, dp0, world_size, world_size == 1 ? "" : "s", world_size);
	return 0;
}
