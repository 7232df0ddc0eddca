/* device.c: the mb_dev_* wrappers over a backend's vtable (backend.h). */
#include "mb.h"

#include <string.h>

#include "../hardware/backend.h"

static const char *const op_names[MB_OP_COUNT] = {
	[MB_OP_GEMM] = "gemm",
	[MB_OP_ROUTER] = "router",
	[MB_OP_ROUTER_BWD] = "router_bwd",
	[MB_OP_PERMUTE] = "permute",
	[MB_OP_PERMUTE_BWD] = "permute_bwd",
	[MB_OP_UNPERMUTE] = "unpermute",
	[MB_OP_UNPERMUTE_BWD] = "unpermute_bwd",
	[MB_OP_GMM] = "gmm",
	[MB_OP_SWIGLU] = "swiglu",
	[MB_OP_SWIGLU_BWD] = "swiglu_bwd",
	[MB_OP_ATTN_FWD] = "attn_fwd",
	[MB_OP_ATTN_BWD] = "attn_bwd",
	[MB_OP_ALLTOALLV] = "alltoallv",
	[MB_OP_ALLREDUCE] = "allreduce",
	[MB_OP_RMSNORM] = "rmsnorm",
	[MB_OP_RMSNORM_BWD] = "rmsnorm_bwd",
	[MB_OP_EMBED] = "embed",
	[MB_OP_EMBED_BWD] = "embed_bwd",
	[MB_OP_XENT] = "xent",
	[MB_OP_ADAMW] = "adamw",
	[MB_OP_ADD] = "add",
	[MB_OP_KCAT] = "kcat",
	[MB_OP_KCAT_BWD] = "kcat_bwd",
};

const char *mb_op_name(mb_op_kind kind)
{
	return (unsigned)kind < MB_OP_COUNT ? op_names[kind] : "?";
}

static int missing(const mb_backend *be, const char *what)
{
	return mb_err(MB_ERR_UNSUPPORTED, "backend %s does not implement %s", be->name, what);
}

int mb_dev_open(const mb_backend *be, mb_dev **out)
{
	*out = NULL;
	if (be->abi != MB_BACKEND_ABI)
		return mb_err(MB_ERR_INTERNAL, "backend %s has abi %d, expected %d", be->name, be->abi,
			      MB_BACKEND_ABI);
	if (!be->open)
		return missing(be, "open");
	return be->open(out);
}

void mb_dev_close(const mb_backend *be, mb_dev *dev)
{
	if (dev && be->close)
		be->close(dev);
}

void *mb_dev_alloc(const mb_backend *be, mb_dev *dev, size_t bytes)
{
	return be->mem_alloc ? be->mem_alloc(dev, bytes) : NULL;
}

void mb_dev_free(const mb_backend *be, mb_dev *dev, void *p)
{
	if (p && be->mem_free)
		be->mem_free(dev, p);
}

int mb_dev_upload(const mb_backend *be, mb_dev *dev, void *dst, const void *src, size_t bytes)
{
	return be->upload ? be->upload(dev, dst, src, bytes) : missing(be, "upload");
}

int mb_dev_download(const mb_backend *be, mb_dev *dev, void *dst, const void *src, size_t bytes)
{
	return be->download ? be->download(dev, dst, src, bytes) : missing(be, "download");
}

int mb_dev_sync(const mb_backend *be, mb_dev *dev)
{
	return be->sync ? be->sync(dev) : 0;
}

int mb_dev_plan(const mb_backend *be, mb_dev *dev, const mb_op *op, mb_plan **out)
{
	*out = NULL;
	if (!be->supports || !be->plan || !be->launch)
		return missing(be, mb_op_name(op->kind));
	int rc = be->supports(dev, op);
	if (rc)
		return rc;
	return be->plan(dev, op, out);
}

int mb_dev_launch(const mb_backend *be, mb_dev *dev, mb_plan *plan, const mb_io *io)
{
	return be->launch(dev, plan, io);
}

void mb_dev_plan_free(const mb_backend *be, mb_dev *dev, mb_plan *plan)
{
	if (plan && be->plan_free)
		be->plan_free(dev, plan);
}

int mb_dev_comm_init(const mb_backend *be, mb_dev *dev, const mb_group *group, mb_comm **out)
{
	*out = NULL;
	if (!be->comm_init)
		return missing(be, "collectives");
	return be->comm_init(dev, group, out);
}

void mb_dev_comm_free(const mb_backend *be, mb_dev *dev, mb_comm *comm)
{
	if (comm && be->comm_free)
		be->comm_free(dev, comm);
}
