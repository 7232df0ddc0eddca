/* cmd_run.c: `moebench run`: parse, expand and validate every case, reserve
 * the result file, open the device, then hand over to the runner. */
#include "mb.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../hardware/power/power.h"
#include "cli.h"
#include "cost.h"
#include "micro.h"
#include "replay.h"
#include "runner.h"
#include "sysinfo.h"
#include "world.h"

static void run_help(const mb_registry *reg)
{
	printf("usage: moebench run [-b BACKEND] [-s SUITE[,SUITE]] [--model NAME]\n"
	       "                    [--preset quick|standard|full] [--warmup N] [--iters N]\n"
	       "                    [--seed N] [-o DIR] [-q] [key=value ...]\n"
	       "       moebench run --replay FILE [-b BACKEND] [-o DIR] [-q]\n\n"
	       "Runs each suite's cases on one backend, checks every case against the fp64\n"
	       "reference, prints a table and writes DIR/<run-id>.json (moebench.result/1),\n"
	       "rewritten atomically after every case.\n\n"
	       "  -b, --backend NAME   ");
	for (int i = 0; i < reg->nbackends; i++)
		printf("%s%s", i ? "|" : "", reg->backends[i]->name);
	printf(" (default cpu)\n  -s, --suite LIST     comma-separated: ");
	for (int i = 0; i < reg->nsuites; i++)
		printf("%s%s", i ? "," : "", reg->suites[i]->name);
	printf(" (default %s)\n"
	       "      --model NAME     model preset (default deepseek-v3; see moebench list)\n"
	       "      --preset SIZE    quick|standard|full (default quick)\n"
	       "      --warmup N       untimed iterations before timing, 0..1000000 (default 2)\n"
	       "      --iters N        timed iterations, one sample each, 1..1000000 (default 10)\n"
	       "      --seed N         seed of all generated data, 0..2^64-1 (default 42)\n"
	       "      --calibration FILE  the measured ceilings (moebench micro -o FILE) to give\n"
	       "                       MFU against, beside the published peak (default: the\n"
	       "                       newest for this host in the output directory)\n"
	       "      --replay FILE    run again exactly the cases a result file recorded (suites,\n"
	       "                       every parameter, model, size, seed, warm-up, iterations)\n"
	       "                       on this machine; -b picks another backend\n"
	       "  -o, --output DIR     where the result file goes (default results)\n"
	       "  -q, --quiet          no table on stdout\n"
	       "      --power-hz HZ    power sampling rate over each case's timed iterations,\n"
	       "                       0 (off) or 0.1..1000 (default 10); the source is the\n"
	       "                       first that works of NVML, Ascend DCMI, --power-cmd,\n"
	       "                       RAPL, hwmon (moebench info lists them)\n"
	       "      --power-cmd CMD  a command that prints watts (a PDU or BMC reader, e.g.\n"
	       "                       'ipmitool dcmi power reading' wrapped to print a number);\n"
	       "                       split on spaces, run without a shell, bounded in time\n"
	       "      --timeout S      the longest any rank may take for one step (a case's\n"
	       "                       setup, one iteration, the check), 0..604800 s; past it\n"
	       "                       the run stops with exit 4 and the result file says\n"
	       "                       which step on which rank. 0 (default): 30 min for setup\n"
	       "                       and the check, and for an iteration the larger of 60 s\n"
	       "                       and 20x the slowest warm-up iteration\n"
	       "      --net-all        list loopback and idle interfaces in the counter deltas\n"
	       "      --sysfs-root DIR read sensors and counters under DIR, not /sys (tests)\n"
	       "  key=value            a suite parameter (moebench list shows them). Numbers take\n"
	       "                       K/M/G suffixes (4K = 4096). Sweeps make several cases:\n"
	       "                       tokens=1K..16K*2 (x2 steps), ffn=256..1024+256, top_k=1,2,8\n\n"
	       "Options and key=value parameters may come in any order.\n"
	       "Precedence: parameter default < model and size preset < key=value.\n"
	       "Exit: 0 all ok or skipped, 1 a case invalid or errored, 2 bad input,\n"
	       "3 backend unavailable, 4 a rank made no progress within --timeout (file status\n"
	       "failed), 128+N stopped by signal N (file status interrupted; failed when ranks\n"
	       "were left waiting for each other).\n",
	       reg->default_suites);
}

static int parse_uint(const char *opt, const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	if (!s[0] || s[0] == '-')
		goto bad;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		goto bad;
	*out = v;
	return 0;
bad:
	return mb_err(MB_ERR_USAGE, "%s: '%s' is not an integer in 0..%llu", opt, s, max);
}

static int parse_suites(const mb_registry *reg, const char *list, mb_run_opts *o)
{
	char buf[256];
	if (strlen(list) >= sizeof buf || !list[0])
		return mb_err(MB_ERR_USAGE, "--suite: bad list '%s'", list);
	strcpy(buf, list);
	char *save = NULL;
	o->nsuites = 0;
	for (char *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
		const mb_suite *su = mb_registry_suite(reg, s);
		if (!su) {
			char names[256] = "";
			for (int i = 0; i < reg->nsuites; i++)
				snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
					 i ? ", " : "", reg->suites[i]->name);
			return mb_err(MB_ERR_USAGE, "unknown suite '%s' (accepted: %s)", s, names);
		}
		for (int i = 0; i < o->nsuites; i++)
			if (o->suites[i] == su)
				return mb_err(MB_ERR_USAGE, "suite '%s' given twice", s);
		if (o->nsuites >= (int)MB_ARRAY_LEN(o->suites))
			return mb_err(MB_ERR_USAGE, "too many suites");
		o->suites[o->nsuites++] = su;
	}
	return o->nsuites ? 0 : mb_err(MB_ERR_USAGE, "--suite: empty list");
}

typedef struct run_args {
	mb_run_opts o;
	const char *outdir;
	const char *backend, *suites, *model, *size;
	mb_power_opts power;
	const char *replay;  /* --replay FILE */
	const char *calibration; /* --calibration FILE */
	const char *replay_of; /* the replayed run's run_id */
	const char *fixed;   /* an option --replay excludes, if given */
	int backend_given, seed_given;
	int power_off;       /* --power-hz 0 */
	char power_why[320]; /* why the sampler is missing */
} run_args;

/* A rate in Hz: 0 (off) or 0.1..1000. */
static int parse_hz(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v == 0.0 || (v >= 0.1 && v <= 1000.0)))
		return mb_err(MB_ERR_USAGE, "--power-hz: '%s' is not 0 (off) or a rate in 0.1..1000",
			      s);
	*out = v;
	return 0;
}

static int parse_args(const mb_registry *reg, int argc, char **argv, run_args *a)
{
	static const struct option opts[] = {
		{"backend", required_argument, NULL, 'b'}, {"suite", required_argument, NULL, 's'},
		{"model", required_argument, NULL, 'm'},   {"preset", required_argument, NULL, 'p'},
		{"warmup", required_argument, NULL, 'w'},  {"iters", required_argument, NULL, 'n'},
		{"seed", required_argument, NULL, 'S'},    {"output", required_argument, NULL, 'o'},
		{"quiet", no_argument, NULL, 'q'},         {"help", no_argument, NULL, 'h'},
		{"power-hz", required_argument, NULL, 'H'}, {"power-cmd", required_argument, NULL, 'C'},
		{"net-all", no_argument, NULL, 'N'},       {"sysfs-root", required_argument, NULL, 'R'},
		{"timeout", required_argument, NULL, 'T'}, {"replay", required_argument, NULL, 'P'},
		{"calibration", required_argument, NULL, 'c'},
		{0}};
	unsigned long long v;
	int c, rc = 0;
	optind = 1;
	opterr = 0;
	while (!rc && (c = getopt_long(argc, argv, "b:s:o:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'b': a->backend = optarg, a->backend_given = 1; break;
		case 's': a->suites = optarg, a->fixed = "-s"; break;
		case 'm': a->model = optarg, a->fixed = "--model"; break;
		case 'p': a->size = optarg, a->fixed = "--preset"; break;
		case 'P': a->replay = optarg; break;
		case 'c': a->calibration = optarg; break;
		case 'o': a->outdir = optarg; break;
		case 'q': a->o.quiet = 1; break;
		case 'w':
			rc = parse_uint("--warmup", optarg, 1000000, &v);
			a->o.warmup = (int)v;
			a->fixed = "--warmup";
			break;
		case 'n':
			a->fixed = "--iters";
			rc = parse_uint("--iters", optarg, 1000000, &v);
			if (!rc && v == 0)
				rc = mb_err(MB_ERR_USAGE, "--iters: '0' is not an integer in 1..1000000");
			a->o.iters = (int)v;
			break;
		case 'S':
			rc = parse_uint("--seed", optarg, ~0ull, &v);
			a->o.seed = v;
			a->seed_given = 1;
			break;
		case 'H':
			rc = parse_hz(optarg, &a->power.hz);
			a->power_off = !rc && a->power.hz == 0.0;
			break;
		case 'C': a->power.cmd = optarg; break;
		case 'N': a->o.net_all = 1; break;
		case 'T':
			rc = parse_uint("--timeout", optarg, 604800, &v);
			a->o.timeout_s = (double)v;
			break;
		case 'R':
			a->power.sysfs_root = a->o.sysfs_root = optarg;
			if (!optarg[0])
				rc = mb_err(MB_ERR_USAGE, "--sysfs-root: an empty path");
			break;
		case 'h': run_help(reg); return 1;
		default:
			return mb_err(MB_ERR_USAGE, "run: unknown option or missing value '%s' (see "
						    "moebench run --help)", argv[optind - 1]);
		}
	}
	if (rc)
		return rc;
	/* getopt moved every non-option to the end: they are the key=value
	 * parameters, in the order given (options may come anywhere). */
	a->o.kv = argv + optind;
	a->o.nkv = argc - optind;
	for (int i = 0; i < a->o.nkv; i++)
		if (!strchr(a->o.kv[i], '='))
			return mb_err(MB_ERR_USAGE, "'%s' is not key=value", a->o.kv[i]);
	if (a->replay && (a->fixed || a->o.nkv))
		return mb_err(MB_ERR_USAGE, "--replay reruns the recorded configuration: %s cannot be "
					    "given with it (accepted beside it: -b, --seed, -o, -q, "
					    "--timeout and the telemetry options)",
			      a->fixed ? a->fixed : a->o.kv[0]);
	if (a->replay)
		return 0; /* the rest comes from the file (replay_args) */
	if (!(a->o.be = mb_registry_backend(reg, a->backend)))
		return mb_err(MB_ERR_USAGE, "unknown backend '%s' (see moebench list)", a->backend);
	if (!(a->o.model = mb_model_find(a->model)))
		return mb_err(MB_ERR_USAGE, "unknown model '%s' (see moebench list)", a->model);
	rc = mb_size_parse(a->size, &a->o.size);
	return rc ? rc : parse_suites(reg, a->suites, &a->o);
}

/* Create dir (and parents) if missing; then reserve DIR/<run-id>.json with
 * O_EXCL so that an existing file is never overwritten. */
static int reserve_output(const char *dir, const char *backend, char *run_id, size_t idn,
			  char *path, size_t pathn)
{
	char tmp[4096];
	if (strlen(dir) >= sizeof tmp || !dir[0])
		return mb_err(MB_ERR_USAGE, "output directory name is empty or too long");
	strcpy(tmp, dir);
	for (char *p = tmp + 1; ; p++) {
		char saved = *p;
		if (saved == '/' || saved == '\0') {
			*p = '\0';
			if (mkdir(tmp, 0755) && errno != EEXIST)
				return mb_err(MB_ERR_USAGE, "cannot create output directory %s: %s", tmp,
					      strerror(errno));
			*p = saved;
		}
		if (!saved)
			break;
	}
	char stamp[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	for (int n = 0; n < 1000; n++) {
		if (n)
			snprintf(run_id, idn, "%s-%s-%ld-%d", stamp, backend, (long)getpid(), n);
		else
			snprintf(run_id, idn, "%s-%s-%ld", stamp, backend, (long)getpid());
		if ((size_t)snprintf(path, pathn, "%s/%s.json", dir, run_id) >= pathn)
			return mb_err(MB_ERR_USAGE, "output path too long");
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (errno != EEXIST)
			return mb_err(MB_ERR_USAGE, "cannot write to output directory %s: %s", dir,
				      strerror(errno));
	}
	return mb_err(MB_ERR_USAGE, "cannot find a free result name in %s", dir);
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = mb_runner_interrupt;
	sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C stops at once; the file stays valid */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* Each rank's host and node, and the most ranks a node has, for the
 * result. The gather is collective: a rank that cannot hold a host name
 * per rank stops with a message rather than leave the others waiting. */
static void world_facts(const mb_world *w, mb_run *run)
{
	int *per = calloc((size_t)w->nodes, sizeof *per);
	run->hosts = calloc((size_t)w->size, sizeof *run->hosts);
	if (!per || !run->hosts) {
		fprintf(stderr, "moebench: rank %d: out of memory for the host list\n", w->rank);
		abort();
	}
	mb_world_hosts(w, run->hosts);
	run->nodes = w->nodes;
	run->nodes_from = w->nodes_from;
	run->node_of = w->node_of;
	for (int i = 0; i < w->size; i++) {
		const int n = ++per[w->node_of ? w->node_of[i] : 0];
		run->ranks_per_node = n > run->ranks_per_node ? n : run->ranks_per_node;
	}
	free(per);
}

/* The power sampler, on each node's first rank (the runner sums the nodes);
 * rate 0 turns it off. The options were checked before any work. */
static void open_power(run_args *a, const mb_world *w)
{
	a->o.power = NULL;
	if (a->power_off) {
		a->o.power_off = "power sampling is off (--power-hz 0)";
		return;
	}
	if (w->local_rank != 0)
		return;
	if (mb_power_open(&a->power, &a->o.power)) {
		a->o.power = NULL;
		snprintf(a->power_why, sizeof a->power_why, "the power sampler did not start: %s",
			 mb_errmsg());
		a->o.power_off = a->power_why;
	}
}

/* The peaks beside the published one (cost.h), on rank 0, which writes
 * the metrics: the calibration named by --calibration (an error if it
 * cannot be used), else the newest for this host in the output directory
 * (none is fine: the reason is recorded); and for a CPU its computed peak. */
static int find_peaks(run_args *a, const mb_backend *be, mb_dev *dev, mb_peaks *pk)
{
	static mb_calibration cal;
	static char path[4200];
	mb_dev_info di = {0};
	be->describe(dev, &di);
	char host[256] = "";
	gethostname(host, sizeof host - 1);
	memset(pk, 0, sizeof *pk);
	int rc = 0;
	if (a->calibration) {
		mb_strlcpy(path, a->calibration, sizeof path);
		if ((rc = mb_calibration_load(path, host, &cal)))
			return mb_err(MB_ERR_USAGE, "--calibration: %s", mb_errmsg());
	} else if (mb_calibration_find_newest(a->outdir, host, path, sizeof path) ||
		   mb_calibration_load(path, host, &cal)) {
		snprintf(pk->cal_reason, sizeof pk->cal_reason,
			 "no calibration for host %.60s in %.80s (moebench micro -o %.80s/NAME.json "
			 "measures one)",
			 host, a->outdir, a->outdir);
		path[0] = 0;
	}
	if (path[0] && (strcmp(cal.backend, be->name) || !di.name || strcmp(cal.device, di.name))) {
		snprintf(pk->cal_reason, sizeof pk->cal_reason,
			 "the calibration %.100s was measured on %.60s (backend %.20s), not on this "
			 "run's device",
			 path, cal.device, cal.backend);
		if (a->calibration)
			return mb_err(MB_ERR_USAGE, "--calibration: %s", pk->cal_reason);
	} else if (path[0]) {
		pk->cal = &cal;
		pk->cal_path = path;
	}
	if (!di.kind || strcmp(di.kind, "cpu")) {
		mb_strlcpy(pk->caps_reason, "a computed peak is only given for CPUs",
			   sizeof pk->caps_reason);
	} else if (mb_spec_cpu_detect(NULL, &pk->caps)) {
		snprintf(pk->caps_reason, sizeof pk->caps_reason, "the CPU's peak cannot be computed: "
								  "%.150s", mb_errmsg());
	} else {
		pk->have_caps = 1;
	}
	return rc;
}

static int run_cases(run_args *a, mb_case_spec *cases, int ncases, mb_world *w, int argc,
		     char **argv)
{
	mb_run run;
	memset(&run, 0, sizeof run);
	char path[4200];
	const mb_backend *be = a->o.be;
	int code = 0;
	if (w->rank == 0 &&
	    reserve_output(a->outdir, be->name, run.run_id, sizeof run.run_id, path, sizeof path))
		code = mb_usage_error(MB_EXIT_USAGE, "%s", mb_errmsg());
	if (w->rank != 0) {
		a->o.quiet = 1;
		path[0] = '\0'; /* only rank 0 writes */
	}

	char why[256] = "";
	mb_dev *dev = NULL;
	if (!code && !be->probe(why, sizeof why))
		code = mb_usage_error(MB_EXIT_NODEV, "backend %s: no device (%s)", be->name, why);
	else if (!code && mb_dev_open(be, &dev))
		code = mb_usage_error(MB_EXIT_NODEV, "backend %s: %s", be->name, mb_errmsg());
	static mb_peaks peaks;
	if (!code && w->rank == 0 && find_peaks(a, be, dev, &peaks))
		code = mb_usage_error(MB_EXIT_USAGE, "%s", mb_errmsg());
	/* Every rank must stop together, or the others would wait in a
	 * collective for one that has left. */
	double worst = code;
	mb_world_max(w, &worst, 1);
	if (worst != 0) {
		if (w->rank == 0 && path[0])
			unlink(path); /* the reserved, still empty result file */
		mb_dev_close(be, dev);
		return code ? code : (int)worst;
	}
	mb_utc_now(run.start_time, sizeof run.start_time);
	run.argc = argc;
	run.argv = argv;
	run.backend = be->name;
	be->describe(dev, &run.dev);
	run.have_dev = 1;
	run.model = a->o.model->name;
	run.model_approximated = a->o.model->approximated;
	run.size = mb_size_name(a->o.size);
	run.seed = a->o.seed;
	run.warmup = a->o.warmup;
	run.iters = a->o.iters;
	run.replay_of = a->replay_of;
	run.calibration = peaks.cal ? peaks.cal_path : NULL;
	run.calibration_reason = peaks.cal_reason;
	a->o.peaks = w->rank == 0 ? &peaks : NULL;
	run.world_size = w->size;
	run.world_rank = w->rank;
	run.launcher = w->launcher;
	world_facts(w, &run);
	run.system = mb_sysinfo_system();
	run.build = mb_sysinfo_build();
	run.environment = mb_sysinfo_environment();

	a->o.world = w;
	open_power(a, w);
	install_signals();
	code = mb_runner_run(&a->o, dev, cases, ncases, &run, w->rank == 0 ? path : NULL);
	mb_power_close(a->o.power);
	if (w->rank == 0 && !a->o.quiet)
		printf("result: %s\n", path);
	mb_run_free(&run);
	free(run.hosts);
	cJSON_Delete(run.system);
	cJSON_Delete(run.build);
	cJSON_Delete(run.environment);
	mb_dev_close(be, dev);
	return code;
}

/* --replay: the cases, model, size, seed, warm-up and iterations of the
 * file; its backend unless -b names another. */
static int replay_args(const mb_registry *reg, run_args *a, mb_case_spec *cases, int *ncases)
{
	static mb_replay rp; /* its strings outlive the run */
	int rc = mb_replay_load(reg, a->replay, a->seed_given, &rp, cases, MB_MAX_CASES, ncases);
	if (rc)
		return rc;
	if (!a->backend_given)
		a->backend = rp.backend;
	if (!(a->o.be = mb_registry_backend(reg, a->backend)))
		return mb_err(MB_ERR_USAGE, "--replay %s: unknown backend '%s' (see moebench list)",
			      a->replay, a->backend);
	if (!(a->o.model = mb_model_find(rp.model)))
		return mb_err(MB_ERR_USAGE, "--replay %s: unknown model '%s'", a->replay, rp.model);
	if ((rc = mb_size_parse(rp.size, &a->o.size)))
		return rc;
	if (!a->seed_given)
		a->o.seed = rp.seed;
	a->o.warmup = rp.warmup;
	a->o.iters = rp.iters;
	a->replay_of = rp.run_id;
	return 0;
}

/* What each case needs of the world (suite.h world_fits), before any work;
 * every rank finds the same, rank 0 says it. */
static int world_fits(const mb_case_spec *cases, int ncases, const mb_world *w)
{
	for (int i = 0; i < ncases; i++) {
		const mb_suite *su = cases[i].suite;
		if (su->world_fits && su->world_fits(&cases[i].params, w->size)) {
			if (w->rank != 0)
				return MB_EXIT_USAGE;
			return mb_usage_error(MB_EXIT_USAGE, "%s", mb_errmsg());
		}
	}
	return 0;
}

int mb_cmd_run(const mb_registry *reg, int argc, char **argv)
{
	run_args a = {
		.o = {.warmup = 2, .iters = 10, .seed = 42},
		.outdir = "results",
		.backend = "cpu",
		.suites = reg->default_suites,
		.model = "deepseek-v3",
		.size = "quick",
	};
	int rc = parse_args(reg, argc, argv, &a);
	if (rc == 1)
		return MB_EXIT_OK;
	if (rc)
		return mb_usage_error(MB_EXIT_USAGE, "%s", mb_errmsg());

	mb_case_spec *cases = calloc(MB_MAX_CASES, sizeof *cases);
	if (!cases)
		return mb_usage_error(MB_EXIT_FAIL, "out of memory");
	int ncases = 0;
	rc = a.replay ? replay_args(reg, &a, cases, &ncases)
		      : mb_cases_expand(&a.o, cases, MB_MAX_CASES, &ncases);
	if (rc) {
		free(cases);
		return mb_usage_error(MB_EXIT_USAGE, "%s", mb_errmsg());
	}
	mb_world w;
	if (mb_world_init(&argc, &argv, &w)) {
		free(cases);
		return mb_usage_error(MB_EXIT_NODEV, "%s", mb_errmsg());
	}
	int code = world_fits(cases, ncases, &w);
	if (!code)
		code = run_cases(&a, cases, ncases, &w, argc + 1, argv - 1);
	free(cases);
	mb_world_finalize(&w);
	return code;
}
