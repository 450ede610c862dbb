/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

struct rsc_loop *t_loop;
struct recorder *t_rec;
char t_dir[256];
static int fds_at_setup;

static void record(struct rsc_loop *loop, enum rsc_event ev,
		   const struct rsc_scope *s, const struct rsc_entry *e,
		   int res, void *data)
{
	struct recorder *r = data;
	struct event *x;

	(void)loop;
	ck_assert_int_lt(r->n, MAX_EVENTS);
	x = &r->ev[r->n++];
	x->ev = ev;
	x->res = res;
	snprintf(x->scope, sizeof(x->scope), "%s", s ? rsc_scope_name(s) : "");
	snprintf(x->entry, sizeof(x->entry), "%s", e ? rsc_entry_name(e) : "");
	snprintf(x->detail, sizeof(x->detail), "%s", e ? rsc_entry_detail(e) : "");
	if (r->after)
		r->after(r, x);
}

void t_setup(void)
{
	int ret;

	/* Counted first, so the fixture's own ring fd is part of what must go. */
	fds_at_setup = t_fd_count();
	snprintf(t_dir, sizeof(t_dir), "%s/rsc-test-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(t_dir));
	t_rec = calloc(1, sizeof(*t_rec));
	ck_assert_ptr_nonnull(t_rec);
	ret = rsc_loop_new(&t_loop, 64, 0);
	ck_assert_msg(ret == 0, "rsc_loop_new: %s: %s", rsc_strerror(ret),
		      rsc_last_error());
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, record, t_rec), 0);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void t_teardown(void)
{
	/* Every test ends with the loop run dry and closing cleanly. */
	if (t_loop) {
		t_run();
		ck_assert_int_eq(rsc_loop_close(t_loop), 0);
		t_loop = NULL;
	}
	nftw(t_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(t_rec);
	t_rec = NULL;
	ck_assert_int_eq(t_fd_count(), fds_at_setup);
}

void t_add_fixture(TCase *tc)
{
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 20);
}

const char *t_path(const char *name)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", t_dir, name);
	return buf[i];
}

void t_make_files(int n)
{
	char name[32];
	int i, fd;

	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		fd = open(t_path(name), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		ck_assert_int_ge(fd, 0);
		close(fd);
	}
}

void t_open_files(struct rsc_scope *s, int first, int n)
{
	char name[32];
	int i, ret;

	for (i = first; i < first + n; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		ret = rsc_open(s, AT_FDCWD, t_path(name), O_RDONLY, 0, 0, NULL);
		ck_assert_msg(ret == 0, "rsc_open %s: %s", name, rsc_last_error());
	}
}

void t_run(void)
{
	int ret = rsc_loop_run(t_loop, RSC_RUN_DEFAULT);

	ck_assert_msg(ret == 0, "rsc_loop_run: %d %s", ret, rsc_last_error());
}

int t_fd_count(void)
{
	int n = rsc_audit_fd_count();

	ck_assert_int_ge(n, 0);
	return n;
}

bool t_fd_open_to(const char *needle)
{
	char link[300], target[512];
	struct dirent *d;
	DIR *dir = opendir("/proc/self/fd");
	bool found = false;
	ssize_t n;

	ck_assert_ptr_nonnull(dir);
	while (!found && (d = readdir(dir))) {
		if (d->d_name[0] == '.' || atoi(d->d_name) == dirfd(dir))
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%s", d->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		found = strstr(target, needle) != NULL;
	}
	closedir(dir);
	return found;
}

int t_events(enum rsc_event kind, const char *scope, char *out, size_t len)
{
	const char *base;
	size_t used = 0;
	int i, n = 0;

	out[0] = '\0';
	for (i = 0; i < t_rec->n; i++) {
		const struct event *e = &t_rec->ev[i];

		if (e->ev != kind || (scope && strcmp(e->scope, scope)))
			continue;
		/* Paths are shown by basename, sockets by their description. */
		base = strrchr(e->detail, '/');
		base = base && e->detail[0] == '/' ? base + 1 : e->detail;
		used += snprintf(out + used, used < len ? len - used : 0, "%s%s",
				 n ? "," : "", base[0] ? base : e->entry);
		n++;
	}
	return n;
}

int t_count_events(enum rsc_event kind)
{
	int i, n = 0;

	for (i = 0; i < t_rec->n; i++)
		n += t_rec->ev[i].ev == kind;
	return n;
}

static struct rsc_loop *probe_loop;

static void free_probe_loop(void)
{
	(void)!rsc_loop_close(probe_loop);
}

struct rsc_loop *t_probe_loop(void)
{
	if (!probe_loop && rsc_loop_new(&probe_loop, 8, 0) == 0)
		atexit(free_probe_loop);
	return probe_loop;
}

bool t_env_missing(const char *name)
{
	const char *spec = getenv("RINGSCOPE_FAULT"), *p;
	size_t len = strlen(name);

	for (p = spec; p && *p; p += strcspn(p, ","), p += *p == ',') {
		size_t rule = strcspn(p, ",");

		if (rule == strlen("missing:") + len && !strncmp(p, "missing:", strlen("missing:")) &&
		    !strncmp(p + strlen("missing:"), name, len))
			return true;
	}
	return false;
}

/* The opcodes the suites ask about, named as a missing: rule names them. */
static const char *opcode_rule_name(unsigned opcode)
{
	switch (opcode) {
	case IORING_OP_ACCEPT:
		return "accept";
	case IORING_OP_CONNECT:
		return "connect";
	case IORING_OP_MSG_RING:
		return "msg_ring";
	case IORING_OP_SEND_ZC:
		return "send_zc";
	case IORING_OP_SHUTDOWN:
		return "shutdown";
	case IORING_OP_SOCKET:
		return "socket";
	case OP_FIXED_FD_INSTALL:
		return "fixed_fd_install";
	case OP_PIPE:
		return "pipe";
	default:
		return NULL;
	}
}

bool t_kernel_has(unsigned opcode)
{
	struct io_uring_probe *p = io_uring_get_probe();
	bool ok = p && io_uring_opcode_supported(p, (int)opcode);
	const char *name = opcode_rule_name(opcode);

	if (p)
		io_uring_free_probe(p);
	return ok && !(name && t_env_missing(name));
}

/* Each as the library decides it: the opcode that came in the same release
 * stands for a flag no probe sees (recv_multishot.c, accept.c, handover.c). */
bool t_has_recv_multishot(void)
{
	return t_kernel_has(IORING_OP_SEND_ZC) && !t_env_missing("recv_multishot");
}

bool t_has_accept_multishot(void)
{
	return t_kernel_has(IORING_OP_SOCKET) && !t_env_missing("accept_multishot");
}

bool t_has_hand_over(void)
{
	return t_kernel_has(IORING_OP_MSG_RING) && t_kernel_has(IORING_OP_SEND_ZC) &&
	       !t_env_missing("msg_send_fd");
}

bool t_has_cancel_fd(void)
{
	return t_kernel_has(IORING_OP_SOCKET) && !t_env_missing("cancel_fd");
}

/* Without a probe, posts never wake by MSG_RING (rsc_fault_set(3), probe). */
bool t_has_post_msg_ring(void)
{
	return t_kernel_has(IORING_OP_MSG_RING) && !t_env_missing("probe");
}

struct sockaddr_in t_loopback(unsigned short port)
{
	struct sockaddr_in a;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

struct rsc_entry *t_listen_on_loopback(struct rsc_scope *s, int backlog, struct sockaddr_in *bound)
{
	struct sockaddr_in a = t_loopback(0);
	socklen_t len = sizeof(*bound);
	struct rsc_entry *l;
	int fd;

	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&a, sizeof(a), backlog, 0, &l), 0);
	fd = rsc_entry_wait(l);
	ck_assert_msg(fd >= 0, "listen: %s", rsc_strerror(fd));
	ck_assert_int_eq(rsc_entry_sockname(l, (struct sockaddr *)bound, &len), 0);
	ck_assert_int_eq(len, sizeof(*bound));
	return l;
}

int t_connect(const struct sockaddr_in *to)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (const struct sockaddr *)to, sizeof(*to)), 0);
	return fd;
}

struct rsc_entry *t_adopted_pair(struct rsc_scope *s, int *peer)
{
	struct rsc_entry *e;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], 0, &e), 0);
	*peer = sv[1];
	return e;
}

char *t_slurp(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (lenp)
		*lenp = (size_t)n;
	return buf;
}

void t_scope_of_files(int n, const char *name)
{
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, name, &s), 0);
	t_open_files(s, 0, n);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}

void t_scope_that_waits(unsigned ms)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int timed = 1;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "waits", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	while (rsc_entry_state(e) == RSC_ENTERING)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_timeout(e, ms, t_store_res, &timed), 0);
	ck_assert_int_eq(t_io_wait(&timed), -ETIME);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}

void t_assert_trace_complete(const char *text)
{
	size_t n = strlen(text);

	ck_assert_msg(strncmp(text, "{\"displayTimeUnit\"", 18) == 0, "header: %.40s", text);
	ck_assert_msg(n > 4 && strcmp(text + n - 4, "\n]}\n") == 0, "tail: %s",
		      text + (n > 16 ? n - 16 : 0));
}

void t_direct_table(unsigned slots, unsigned chain_slots)
{
	int ret = rsc_loop_set_direct(t_loop, slots, chain_slots);

	ck_assert_msg(ret == 0, "rsc_loop_set_direct: %s: %s", rsc_strerror(ret),
		      rsc_last_error());
}

bool t_under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");

	return p && strstr(p, "vgpreload");
}

long t_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void guard_fired(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	if (res != -ECANCELED)
		((struct t_guard *)data)->fired = 1;
}

void t_guard_start(struct t_guard *g, struct rsc_loop *loop, unsigned ms)
{
	g->fired = 0;
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "guard", &g->s), 0);
	ck_assert_int_eq(rsc_timer(g->s, ms, guard_fired, g, NULL), 0);
}

void t_guard_stop(struct t_guard *g)
{
	ck_assert_int_eq(rsc_scope_close(g->s, NULL, NULL), 0);
}

bool t_posts_poll_one_shot(struct rsc_loop *loop)
{
	return (rsc_loop_features(loop) & RSC_FEAT_POST_EVENTFD) && t_env_missing("poll_multishot");
}

void t_settle_posts(struct rsc_loop *loop)
{
	struct rsc_scope *s;
	int i, res;

	if (!(rsc_loop_features(loop) & RSC_FEAT_POST_EVENTFD))
		return;
	/* The first turn submits the poll (refused at once without multishot
	 * polls), the second its one-shot re-arm: a timer keeps each turn busy. */
	for (i = 0; i < 2; i++) {
		res = 1;
		ck_assert_int_eq(rsc_scope_open(loop, NULL, "settle", &s), 0);
		ck_assert_int_eq(rsc_timer(s, 1, t_store_res, &res, NULL), 0);
		while (res == 1)
			ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_ONCE), 0);
		ck_assert_int_eq(res, -ETIME);
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	}
}

/*
 * A property of the build, asked once: the suites ask it as they are built,
 * and each test Check forks inherits the answer. Asked first in such a child,
 * the probe loop is the parent's, which answers -ECHILD (ringscope(7), FORK):
 * a loop of its own answers then, and is closed at once.
 */
bool t_has_fault_injection(void)
{
	static int known = -1;
	struct rsc_loop *loop;
	int ret;

	if (known >= 0)
		return known;
	ret = rsc_fault_set(t_probe_loop(), "");
	if (ret == -ECHILD && rsc_loop_new(&loop, 8, 0) == 0) {
		ret = rsc_fault_set(loop, "");
		(void)!rsc_loop_close(loop);
	}
	known = ret == 0;
	return known;
}

struct rlimit t_disk_full_at(off_t bytes)
{
	struct rlimit old, lim;

	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)bytes;
	signal(SIGXFSZ, SIG_IGN);
	(void)setrlimit(RLIMIT_FSIZE, &lim);
	return old;
}

void t_disk_free_again(struct rlimit old)
{
	int ret = setrlimit(RLIMIT_FSIZE, &old);

	signal(SIGXFSZ, SIG_DFL);
	ck_assert_int_eq(ret, 0);
}

void t_store_res(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	*(int *)data = res;
}

/* The kernel leaves its table out of fdinfo while busy: the check says so, try again. */
int t_audit_slots(struct rsc_loop *loop)
{
	int i, ret = -EAGAIN;

	for (i = 0; i < 100 && ret == -EAGAIN; i++)
		ret = rsc_audit_slots(loop);
	ck_assert_msg(ret >= 0, "rsc_audit_slots: %s: %s", rsc_strerror(ret), rsc_last_error());
	return ret;
}

void t_count_arrival(struct rsc_entry *inbox, int slot, struct rsc_scope *cs,
		     struct rsc_entry *e, void *data)
{
	(void)inbox;
	(void)slot;
	(void)cs;
	(void)e;
	(*(int *)data)++;
}

/* An AF_UNIX listener with a full backlog: a connect to it waits in the
 * kernel (in an io-wq worker) until room is made. */
int t_full_unix_listener(struct sockaddr_un *sun, int fill[64], int *nfill)
{
	int lfd, i;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", t_path("full"));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)sun, sizeof(*sun)), 0);
	ck_assert_int_eq(listen(lfd, 0), 0);
	for (*nfill = 0, i = 0; i < 64; i++) {
		fill[*nfill] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (connect(fill[*nfill], (struct sockaddr *)sun, sizeof(*sun)) < 0) {
			close(fill[*nfill]);
			break;
		}
		(*nfill)++;
	}
	ck_assert_int_lt(*nfill, 64);
	return lfd;
}

void t_full_unix_listener_close(int lfd, int fill[64], int nfill)
{
	while (nfill > 0)
		close(fill[--nfill]);
	close(lfd);
	unlink(t_path("full"));
}

void t_use_up_descriptors(struct t_no_fds *u)
{
	struct rlimit low;
	int top = 0;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &u->old), 0);
	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			top = fd;
	low = u->old;
	low.rlim_cur = (rlim_t)top + 8;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	u->n = 0;
	while (u->n < (int)(sizeof(u->fds) / sizeof(u->fds[0]))) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			ck_assert_int_eq(errno, EMFILE);
			return;
		}
		u->fds[u->n++] = fd;
	}
	ck_abort_msg("t_use_up_descriptors: no EMFILE after %d opens", u->n);
}

void t_descriptors_back(struct t_no_fds *u)
{
	while (u->n > 0)
		close(u->fds[--u->n]);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &u->old), 0);
}

int t_nop_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	return 0;
}

void t_nop_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)res;
	(void)buf;
	(void)data;
}

void t_nop_accept(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *c, void *data)
{
	(void)l;
	(void)res;
	(void)cs;
	(void)c;
	(void)data;
}

int t_io_wait(int *res)
{
	while (*res == 1)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	return *res;
}
