/* report_gnuplot.c: the gnuplot side of `moebench report` (report.h):
 * where the templates are, and running gnuplot on each plot's script.
 *
 * gnuplot is started with posix_spawnp (the fork/execvp pair done in one
 * call, safe in a threaded process) and an argument vector, never a shell,
 * in the plots directory, with stdin and stdout on /dev/null, stderr on a
 * pipe (its first line becomes the note when it fails), an empty signal
 * mask and its own process group, so that the time limit kills whatever it
 * started too.
 */
#include "mb.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "report.h"

#define GP_ERR_MAX 400 /* bytes of gnuplot's stderr kept for a note */

extern char **environ;

int mb_rep_templates(char *dir, size_t dn, char *why, size_t wn)
{
	char exe[4096], cand[4200];
	const char *env = getenv("MOEBENCH_PLOTS_DIR");
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	const char *dirs[3] = {env && *env ? env : NULL, NULL, "plots"};
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			mb_rep_fmt(slash, sizeof exe - (size_t)(slash - exe), "/../plots");
			dirs[1] = exe;
		}
	}
	for (int i = 0; i < 3; i++) {
		if (!dirs[i])
			continue;
		mb_rep_fmt(cand, sizeof cand, "%s/bars.gp", dirs[i]);
		if (access(cand, R_OK) == 0 && strlen(dirs[i]) < dn) {
			mb_rep_fmt(dir, dn, "%s", dirs[i]);
			return 0;
		}
		if (i == 0) /* named explicitly: say so rather than look elsewhere */
			break;
	}
	dir[0] = '\0';
	mb_rep_fmt(why, wn, "gnuplot templates not found (MOEBENCH_PLOTS_DIR, "
					    "plots/ beside the binary's directory, ./plots): the data "
					    "is written, the script is not");
	return -1;
}

/* Run prog on NAME.gp in dir; 0 when it exited 0, else -1 with why.
 * *missing is set when prog could not be started at all, *late when it
 * was killed at the time limit. */
static int gp_run(const char *prog, const char *dir, const char *name, double limit_s, char *why,
		  size_t n, int *missing, int *late)
{
	char script[MB_REP_NAME_MAX + 24], err[GP_ERR_MAX + 1];
	char *argv[] = {(char *)prog, "-d", script, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	int pfd[2], e, status = 0;
	size_t got = 0;
	pid_t pid;
	mb_rep_fmt(script, sizeof script, "%s.gp", name);
	if (pipe2(pfd, O_CLOEXEC)) {
		mb_rep_fmt(why, n, "pipe: %s", strerror(errno));
		return -1;
	}
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addchdir_np(&fa, dir);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDERR_FILENO);
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	e = posix_spawnp(&pid, prog, &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (e) {
		close(pfd[0]);
		mb_rep_fmt(why, n, "cannot run %s: %s", prog, strerror(e));
		*missing = 1;
		return -1;
	}
	/* stderr until EOF or the deadline; the first GP_ERR_MAX bytes kept */
	double deadline = mb_now_s() + limit_s;
	for (;;) {
		double left = deadline - mb_now_s();
		struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
		char chunk[512];
		if (left <= 0)
			break;
		if (poll(&pf, 1, (int)ceil(fmin(left, 1.0) * 1e3)) <= 0)
			continue;
		ssize_t r = read(pfd[0], chunk, sizeof chunk);
		if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
			break;
		for (ssize_t i = 0; i < r && got < GP_ERR_MAX; i++)
			err[got++] = chunk[i];
	}
	close(pfd[0]);
	err[got] = '\0';
	pid_t w = 0;
	const struct timespec ms = {0, 1000000};
	while ((w = waitpid(pid, &status, WNOHANG)) == 0 && mb_now_s() < deadline)
		nanosleep(&ms, NULL);
	if (w == 0) { /* still running: its whole process group goes */
		kill(-pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		mb_rep_fmt(why, n, "%s killed after %g s", prog, limit_s);
		*late = 1;
		return -1;
	}
	if (w > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	char first[GP_ERR_MAX + 1];
	size_t k = 0;
	for (const char *s = err + strspn(err, "\r\n "); *s && *s != '\n' && k < GP_ERR_MAX; s++)
		first[k++] = *s;
	first[k] = '\0';
	char shown[GP_ERR_MAX + 8];
	mb_rep_text(shown, sizeof shown, first);
	if (w > 0 && WIFSIGNALED(status))
		mb_rep_fmt(why, n, "%s stopped by signal %d: %s", prog, WTERMSIG(status), shown);
	else
		mb_rep_fmt(why, n, "%s failed (exit %d): %s", prog,
			 w > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1, shown);
	return -1;
}

static int nonempty(const char *dir, const char *name, const char *ext)
{
	char path[4200];
	struct stat st;
	mb_rep_fmt(path, sizeof path, "%s/%s.%s", dir, name, ext);
	return !stat(path, &st) && S_ISREG(st.st_mode) && st.st_size > 0;
}

void mb_rep_render(mb_rep_plots *plots, const char *dir)
{
	const char *prog = getenv("MOEBENCH_GNUPLOT");
	const char *lim = getenv("MOEBENCH_GNUPLOT_TIMEOUT_S");
	double limit = lim ? strtod(lim, NULL) : MB_REP_GNUPLOT_TIMEOUT_S;
	int stop = 0;
	char path[4200];
	if (!prog || !*prog)
		prog = "gnuplot";
	if (!(limit >= 0.1 && limit <= 600))
		limit = MB_REP_GNUPLOT_TIMEOUT_S;
	for (int i = 0; i < plots->n; i++) {
		mb_rep_plot *p = &plots->p[i];
		if (!p->written)
			continue;
		/* No stale picture from an earlier report may pass for this one. */
		mb_rep_fmt(path, sizeof path, "%s/%s.svg", dir, p->name);
		unlink(path);
		mb_rep_fmt(path, sizeof path, "%s/%s.png", dir, p->name);
		unlink(path);
		if (stop) {
			mb_rep_fmt(p->note, sizeof p->note, "not rendered: %s", plots->gnuplot_note);
			continue;
		}
		char why[MB_REP_TEXT_MAX];
		int missing = 0, late = 0;
		if (gp_run(prog, dir, p->name, limit, why, sizeof why, &missing, &late)) {
			mb_rep_fmt(p->note, sizeof p->note, "not rendered: %s", why);
			if (missing || late) { /* the next would fail or hang the same way */
				mb_rep_fmt(plots->gnuplot_note, sizeof plots->gnuplot_note, "%s", why);
				stop = 1;
			}
			continue;
		}
		plots->gnuplot_ok = 1;
		if (nonempty(dir, p->name, "svg") && nonempty(dir, p->name, "png"))
			p->rendered = 1;
		else
			mb_rep_fmt(p->note, sizeof p->note, "not rendered: %s exited 0 but wrote no "
							  "%s.svg or %s.png", prog, p->name, p->name);
	}
}

