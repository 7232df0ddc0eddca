/* cost.h: metrics derived from a suite's cost and the measured times. */
#ifndef MB_COST_H
#define MB_COST_H

#include "result.h"

/* Fill out from cost c and statistics s over ranks ranks; underivable
 * metrics are NAN. */
void mb_metrics_derive(const mb_cost *c, const mb_stats *s, int ranks, mb_metrics *out);

#endif
