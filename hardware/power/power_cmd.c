/* power_cmd.c: the external power source: a user's command (a PDU or BMC
 * query) run once per reading, whose stdout is one number of watts.
 *
 * The command is split on white space into an argv; there is no shell, so
 * no quoting, pipes or globs: a pipeline goes into a script. It is started
 * with posix_spawnp, the fork/execvp pair done in one call that is safe in a
 * threaded process (the child of a plain fork may only call async-signal-
 * safe functions until it execs, and glibc's execvp is not listed as one;
 * glibc spawns with a vfork-style clone, which also costs less). The child
 * gets stdin and stderr on /dev/null, an empty signal mask and its own
 * process group, so that a timeout kills whatever it started too.
 */
#include "harness/mb.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "power_int.h"

#define CMD_MAX_ARGS 32
#define CMD_OUT_MAX 256 /* more output than this is not one number */
#define CMD_MIN_TIMEOUT_S 2.0

extern char **environ;

typedef struct cmd_src {
	char *buf; /* the command, split in place into argv */
	char *argv[CMD_MAX_ARGS + 1];
	double timeout_s;
} cmd_src;

/* How a run's output stopped. */
enum { CMD_EOF, CMD_LATE, CMD_LONG, CMD_READ_ERR };

static void cmd_close(void *st)
{
	cmd_src *s = st;
	if (s)
		free(s->buf);
	free(s);
}

/* 1 if file names an executable, as posix_spawnp would look for it. */
static int cmd_found(const char *file)
{
	char path[4096];
	const char *dirs = getenv("PATH");
	if (strchr(file, '/'))
		return access(file, X_OK) == 0;
	for (dirs = dirs ? dirs : "/bin:/usr/bin"; *dirs; dirs += *dirs == ':') {
		size_t len = strcspn(dirs, ":");
		snprintf(path, sizeof path, "%.*s/%s", (int)len, len ? dirs : ".", file);
		if (access(path, X_OK) == 0)
			return 1;
		dirs += len;
	}
	return 0;
}

static int cmd_open(const mb_power_opts *o, double period_s, void **st, mb_pw_info *info,
		    char *why, size_t n)
{
	cmd_src *s;
	char *save = NULL;
	int argc = 0;
	if (!o->cmd) {
		snprintf(why, n, "no --power-cmd given");
		return 1;
	}
	if (!(s = calloc(1, sizeof *s)) || !(s->buf = strdup(o->cmd))) {
		cmd_close(s);
		return mb_err(MB_ERR_NOMEM, "power: out of memory");
	}
	for (char *a = strtok_r(s->buf, " \t\r\n", &save); a; a = strtok_r(NULL, " \t\r\n", &save)) {
		if (argc == CMD_MAX_ARGS) {
			cmd_close(s);
			return mb_err(MB_ERR_USAGE, "--power-cmd has more than %d words", CMD_MAX_ARGS);
		}
		s->argv[argc++] = a;
	}
	if (argc == 0) {
		cmd_close(s);
		return mb_err(MB_ERR_USAGE, "--power-cmd is empty");
	}
	if (!cmd_found(s->argv[0])) {
		snprintf(why, n, "%s: not found or not executable", s->argv[0]);
		cmd_close(s);
		return 1;
	}
	s->timeout_s = o->cmd_timeout_s > 0 ? o->cmd_timeout_s : fmax(CMD_MIN_TIMEOUT_S, period_s);
	snprintf(info->detail, sizeof info->detail, "\"%.120s\", watts on stdout, killed after %g s",
		 o->cmd, s->timeout_s);
	*st = s;
	return 0;
}

/* Start the command with its stdout on a pipe; 0, or -1 with why. */
static int cmd_spawn(const cmd_src *s, pid_t *pid, int *out, char *why, size_t n)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	int pfd[2], e;
	if (pipe2(pfd, O_CLOEXEC)) {
		snprintf(why, n, "pipe: %s", strerror(errno));
		return -1;
	}
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	e = posix_spawnp(pid, s->argv[0], &fa, &at, s->argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (e) {
		close(pfd[0]);
		snprintf(why, n, "cannot run %s: %s", s->argv[0], strerror(e));
		return -1;
	}
	*out = pfd[0];
	return 0;
}

/* Read fd into out until EOF, the deadline, or more than CMD_OUT_MAX bytes. */
static int cmd_collect(int fd, double deadline, char *out, size_t *len)
{
	for (;;) {
		double left = deadline - mb_now_s();
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t got;
		if (left <= 0)
			return CMD_LATE;
		if (poll(&pf, 1, (int)ceil(fmin(left, 1.0) * 1e3)) <= 0)
			continue; /* the time left is checked again */
		got = read(fd, out + *len, CMD_OUT_MAX + 1 - *len);
		if (got == 0)
			return CMD_EOF;
		if (got < 0 && errno != EINTR && errno != EAGAIN)
			return CMD_READ_ERR;
		*len += got > 0 ? (size_t)got : 0;
		if (*len > CMD_OUT_MAX)
			return CMD_LONG;
	}
}

/* Wait for the command until the deadline (not at all with kill_now), then
 * kill its process group; 1 if it was killed. A waitpid error (SIGCHLD
 * ignored by the program: the child reaped itself) leaves status 0. */
static int cmd_reap(pid_t pid, double deadline, int kill_now, int *status)
{
	const struct timespec ms = { 0, 1000000 };
	pid_t r = 0;
	while (!kill_now && (r = waitpid(pid, status, WNOHANG)) == 0 && mb_now_s() < deadline)
		nanosleep(&ms, NULL);
	if (r != 0)
		return 0;
	kill(-pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	return 1;
}

/* The output as one finite non-negative number; 0, or -1 with why. */
static int cmd_parse(const char *out, size_t len, double *w, char *why, size_t n)
{
	const char *p = out + strspn(out, " \t\r\n");
	char *end, shown[41];
	size_t k;
	double x;
	errno = 0;
	x = strtod(p, &end);
	if (strlen(out) == len && end != p && !end[strspn(end, " \t\r\n")] && !errno &&
	    isfinite(x) && x >= 0) {
		*w = x;
		return 0;
	}
	k = strlen(p);
	while (k && strchr(" \t\r\n", p[k - 1]))
		k--;
	snprintf(shown, sizeof shown, "%.*s", (int)k, p);
	for (char *c = shown; *c; c++)
		if ((unsigned char)*c < ' ' || (unsigned char)*c > '~')
			*c = '?';
	snprintf(why, n, "output \"%s\" is not one finite non-negative number of watts", shown);
	return -1;
}

/* Why a run is not a reading ("" when it is). */
static void cmd_status(const cmd_src *s, int how, int killed, int status, char *why, size_t n)
{
	if (how == CMD_LATE || (how == CMD_EOF && killed))
		snprintf(why, n, "%s did not finish within %g s and was killed", s->argv[0],
			 s->timeout_s);
	else if (how == CMD_LONG)
		snprintf(why, n, "%s printed more than %d bytes", s->argv[0], CMD_OUT_MAX);
	else if (how == CMD_READ_ERR)
		snprintf(why, n, "reading the output of %s failed", s->argv[0]);
	else if (WIFSIGNALED(status))
		snprintf(why, n, "%s was killed by signal %d", s->argv[0], WTERMSIG(status));
	else if (!WIFEXITED(status) || WEXITSTATUS(status))
		snprintf(why, n, "%s exited with status %d", s->argv[0], WEXITSTATUS(status));
	else
		why[0] = '\0';
}

static int cmd_read(void *st, double *v, char *why, size_t n)
{
	cmd_src *s = st;
	char out[CMD_OUT_MAX + 2];
	double deadline = mb_now_s() + s->timeout_s;
	size_t len = 0;
	pid_t pid;
	int fd, how, killed, status = 0;
	if (cmd_spawn(s, &pid, &fd, why, n))
		return -1;
	how = cmd_collect(fd, deadline, out, &len);
	close(fd);
	out[len] = '\0';
	killed = cmd_reap(pid, deadline, how != CMD_EOF, &status);
	cmd_status(s, how, killed, status, why, n);
	if (why[0])
		return -1;
	return cmd_parse(out, len, v, why, n);
}

const mb_pw_ops mb_pw_cmd = {
	.name = "power-cmd",
	.scope = "external",
	.open = cmd_open,
	.read = cmd_read,
	.close = cmd_close,
};
