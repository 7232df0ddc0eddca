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
