/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "helpers.h"
#include "tmgr.h"

/*
 * The heap cannot grow (alloc:N:ENOMEM, rsc_fault_set(3)): each public call
 * that allocates has its 1st, 2nd, ... allocation fail, once and as a burst
 * of 16, until the call runs with no fault left. Each time the call fails
 * with -ENOMEM (or succeeds), no descriptor stays open, every acquired
 * entry is released exactly once, and the loop still works and closes with 0.
 * LSan (the ASan build) sees any memory left behind.
 */

#define MAX_NTH 400 /* far more allocations than any one case makes */

struct af_ctx {
	struct rsc_loop *loop;
	struct rsc_scope *s;	 /* opened before the faults */
	struct rsc_scope *other; /* made under the faults, if the case makes one */
	struct rsc_entry *e;
	int peer;		 /* the test's end of a socket pair, or -1 */
	int fd;			 /* a descriptor the caller still owns, or -1 */
	int exits, posts, cbs;	 /* callbacks seen */
	int close_ret;		 /* the scope's result */
	int first_err;		 /* the first error the case raised, or 0 */
	struct rsc_error *chain; /* the scope's error chain */
	int allowed_close_err; /* an error the scope may end with besides -ENOMEM */
	int io_started, io_done; /* tracked I/O calls that returned 0; their callbacks */
	int lfd, fill[64], nfill; /* a full AF_UNIX listener (t_full_unix_listener) */
	struct sockaddr_un sun;
};

struct af_case {
	const char *name;
	void (*prepare)(struct af_ctx *c); /* before the faults (optional) */
	int (*call)(struct af_ctx *c);	   /* the call under test, faults on */
	void (*finish)(struct af_ctx *c, int ret); /* still under the faults */
	void (*verify)(struct af_ctx *c, int ret); /* faults off (optional) */
	unsigned loop_flags;
	unsigned need_opcode; /* 0, or an opcode the kernel must have */
	/* acquired != released by design: a socket entry whose descriptor the
	 * next entry takes over, or an entry detached (the caller's then) */
	bool compound;
	/* Its allocations are all made before the call (a release lists its
	 * close in room the entry pool made): none to fail is the promise. */
	bool allocates_nothing;
};

/* -ENOMEM, or the one other error this case may document. */
static void assert_enomem_or_ok(int ret, const char *what)
{
	ck_assert_msg(ret == 0 || ret == -ENOMEM, "%s: %s (%s)", what, rsc_strerror(ret),
		      rsc_last_error());
}

static void run_dry(struct rsc_loop *loop)
{
	long deadline = t_now_ms() + 10000;

	while (rsc_loop_alive(loop) > 0) {
		ck_assert_msg(t_now_ms() < deadline, "the loop did not run dry in 10 s");
		ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_ONCE), 0);
	}
}

/* Run until *@flag is set (bounded): idle receives of another scope may keep the loop alive. */
static void run_until(struct rsc_loop *loop, const int *flag)
{
	long deadline = t_now_ms() + 10000;

	while (!*flag) {
		ck_assert_msg(t_now_ms() < deadline, "what the case waits for did not come in 10 s");
		ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_NOWAIT), 0);
		if (!*flag)
			usleep(100);
	}
}

static void close_scope(struct af_ctx *c, struct rsc_scope **s)
{
	if (!*s)
		return;
	c->close_ret = rsc_scope_close_wait(*s, c->chain ? NULL : &c->chain);
	*s = NULL;
}

/* The scope under test closes with 0 or -ENOMEM only, and its exits ran once. */
static void run_dry_scope(struct af_ctx *c)
{
	close_scope(c, &c->other);
	close_scope(c, &c->s);
	if (c->close_ret != c->allowed_close_err)
		assert_enomem_or_ok(c->close_ret, "the scope's close");
}

/* Most cases: close what was opened under the faults. */
static void finish_close(struct af_ctx *c, int ret)
{
	(void)ret;
	run_dry_scope(c);
}

static void prepare_scope(struct af_ctx *c)
{
	ck_assert_int_eq(rsc_scope_open(c->loop, NULL, "af", &c->s), 0);
}

/* ---- the cases ---- */

static int call_scope_open(struct af_ctx *c)
{
	int ret = rsc_scope_open(c->loop, NULL, "child", &c->other);

	if (ret < 0)
		ck_assert_ptr_null(c->other);
	return ret;
}

static int call_scope_open_nested(struct af_ctx *c)
{
	return rsc_scope_open(c->loop, c->s, "nested", &c->other);
}

static int call_open(struct af_ctx *c)
{
	int ret = rsc_open(c->s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &c->e);

	if (ret < 0)
		ck_assert_ptr_null(c->e);
	return ret;
}

/* A path longer than an entry's inline detail: the detail is allocated. */
static int call_open_long_path(struct af_ctx *c)
{
	char path[200];

	snprintf(path, sizeof(path), "%s/%0150d", t_dir, 7);
	close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	return rsc_open(c->s, AT_FDCWD, path, O_RDONLY, 0, 0, &c->e);
}

static int call_socket(struct af_ctx *c)
{
	return rsc_socket(c->s, AF_UNIX, SOCK_STREAM, 0, 0, &c->e);
}

static int call_pipe(struct af_ctx *c)
{
	return rsc_pipe(c->s, 0, &c->e);
}

static void prepare_pair(struct af_ctx *c)
{
	int sv[2];

	prepare_scope(c);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	c->fd = sv[0];
	c->peer = sv[1];
}

static int call_adopt(struct af_ctx *c)
{
	int ret = rsc_adopt(c->s, c->fd, 0, &c->e);

	if (ret == 0)
		c->fd = -1; /* the entry's now */
	return ret;
}

static int count_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	((struct af_ctx *)arg)->exits++;
	return 0;
}

static int call_defer(struct af_ctx *c)
{
	return rsc_defer(c->s, count_exit, c, &c->e);
}

static void verify_defer(struct af_ctx *c, int ret)
{
	/* Exactly once when pushed; never when the push failed. */
	ck_assert_int_eq(c->exits, ret == 0 ? 1 : 0);
}

static struct tmgr af_tm;

static void prepare_push(struct af_ctx *c)
{
	prepare_scope(c);
	memset(&af_tm, 0, sizeof(af_tm));
	af_tm.enter = TM_ENTER_OPEN;
	af_tm.path = "/dev/null";
}

static int call_push(struct af_ctx *c)
{
	return rsc_push(c->s, &tmgr_manager, &af_tm, &c->e);
}

static void verify_push(struct af_ctx *c, int ret)
{
	(void)c;
	/* A failed push acquired nothing: its exit is not called. */
	ck_assert_int_eq(af_tm.exit_calls, ret == 0 && af_tm.enter_calls ? 1 : 0);
}

static int call_timer(struct af_ctx *c)
{
	return rsc_timer(c->s, 100000, t_store_res, &c->cbs, &c->e);
}

static int call_deadline(struct af_ctx *c)
{
	return rsc_scope_set_deadline(c->s, 60000, 0);
}

static void verify_deadline(struct af_ctx *c, int ret)
{
	(void)ret;
	/* A refused deadline left nothing armed: the close was no deadline. */
	ck_assert_int_ne(c->close_ret, -ETIMEDOUT);
	ck_assert_int_eq(rsc_loop_counter(c->loop, RSC_CTR_DEADLINES), 0);
}

static void count_post(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	((struct af_ctx *)arg)->posts++;
}

static int call_post(struct af_ctx *c)
{
	return rsc_loop_post(c->loop, count_post, c);
}

static void finish_post(struct af_ctx *c, int ret)
{
	if (ret == 0)
		run_until(c->loop, &c->posts);
}

static void verify_post(struct af_ctx *c, int ret)
{
	ck_assert_int_eq(c->posts, ret == 0 ? 1 : 0);
}

static int call_trace_file(struct af_ctx *c)
{
	return rsc_loop_trace_file(c->loop, t_path("trace.json"));
}

static void finish_trace(struct af_ctx *c, int ret)
{
	struct rsc_scope *s;

	(void)ret;
	/* Events to write, some with memory and some without. */
	if (rsc_scope_open(c->loop, NULL, "traced", &s) == 0) {
		if (rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, NULL) == 0)
			(void)rsc_loop_run(c->loop, RSC_RUN_NOWAIT);
		(void)rsc_scope_close_wait(s, NULL);
	}
}

static void verify_trace(struct af_ctx *c, int ret)
{
	(void)ret;
	ck_assert_int_ge(rsc_loop_trace_file(c->loop, NULL), 0);
}

static int call_chain(struct af_ctx *c)
{
	struct rsc_chain *ch = NULL;
	int ret;

	ret = rsc_chain_new(c->s, &ch);
	if (ret < 0) {
		ck_assert_ptr_null(ch);
		return ret;
	}
	ret = rsc_chain_open(ch, AT_FDCWD, "/dev/null", O_RDONLY, 0, NULL);
	if (ret == 0)
		ret = rsc_chain_socket(ch, AF_UNIX, SOCK_STREAM, 0, NULL);
	if (ret == 0)
		ret = rsc_chain_submit(ch);
	rsc_chain_free(ch); /* a no-op once submitted */
	return ret;
}

static void prepare_direct(struct af_ctx *c)
{
	prepare_scope(c);
	ck_assert_int_eq(rsc_loop_set_direct(c->loop, 16, 4), 0);
}

static void count_accept(struct rsc_entry *l, int res, struct rsc_scope *cs,
			 struct rsc_entry *conn, void *data)
{
	(void)l;
	(void)res;
	(void)conn;
	((struct af_ctx *)data)->cbs++;
	if (cs) /* the connection's scope is the caller's to close */
		ck_assert_int_eq(rsc_scope_close(cs, NULL, NULL), 0);
}

static int call_listen_accept(struct af_ctx *c)
{
	struct sockaddr_in to = t_loopback(0);
	int ret = rsc_listen(c->s, (struct sockaddr *)&to, sizeof(to), 8, 0, &c->e);

	if (ret < 0)
		return ret;
	if (rsc_entry_wait(c->e) < 0)
		return 0; /* the listener's own acquire failed: the scope says why */
	ret = rsc_accept(c->e, 0, count_accept, c);
	if (ret == 0) {
		socklen_t len = sizeof(to);

		ck_assert_int_eq(rsc_entry_sockname(c->e, (struct sockaddr *)&to, &len), 0);
		c->peer = t_connect(&to);
	}
	return ret;
}

static void verify_accept(struct af_ctx *c, int ret)
{
	/* A started accept ends with exactly one callback; a refused one, none. */
	ck_assert_int_eq(c->cbs, ret == 0 && c->peer >= 0 ? 1 : 0);
}

static void prepare_multishot(struct af_ctx *c)
{
	prepare_scope(c);
	c->e = t_adopted_pair(c->s, &c->peer);
}

static void count_recv(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	if (res <= 0)
		((struct af_ctx *)data)->cbs++;
}

static int call_recv_multishot(struct af_ctx *c)
{
	int ret = rsc_recv_multishot(c->e, 0, count_recv, c);

	if (ret == 0)
		ck_assert_int_eq(write(c->peer, "x", 1), 1);
	return ret;
}

static int call_recv_buffers(struct af_ctx *c)
{
	int ret = rsc_loop_set_recv_buffers(c->loop, 8, 256);

	if (ret == 0)
		ret = call_recv_multishot(c);
	return ret;
}

static void verify_recv(struct af_ctx *c, int ret)
{
	/* The last call comes once for a started receive, never for a refused one. */
	ck_assert_int_eq(c->cbs, ret == 0 ? 1 : 0);
}

static int fail_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct af_ctx *c = arg;
	static const int errs[] = { EIO, EPERM, EROFS, EXDEV, EDOM, ERANGE, ENOTTY, ESPIPE };

	(void)e;
	(void)pending;
	/* Each exit its own error, none the runtime gives a meaning to. */
	return -errs[c->exits++ % 8];
}

/* Errors raised while the chain cannot grow: the first one is never lost. */
static void prepare_failing_exits(struct af_ctx *c)
{
	int i;

	prepare_scope(c);
	for (i = 0; i < 6; i++)
		ck_assert_int_eq(rsc_defer(c->s, fail_exit, c, NULL), 0);
	c->first_err = -ENOSPC;
}

static int call_scope_fail(struct af_ctx *c)
{
	int ret = rsc_scope_fail(c->s, -ENOSPC, "body");

	if (ret < 0) /* refused, nothing changed: the close is clean, its first exit's error first */
		c->first_err = -EIO;
	return ret;
}

static void finish_failing(struct af_ctx *c, int ret)
{
	(void)ret;
	close_scope(c, &c->s);
}

static void verify_failing(struct af_ctx *c, int ret)
{
	const struct rsc_error *e;

	(void)ret;
	ck_assert_int_eq(c->exits, 6);
	ck_assert_int_ne(c->close_ret, 0);
	ck_assert_ptr_nonnull(c->chain);
	ck_assert_int_eq(rsc_error_errno(c->chain), c->close_ret);
	for (e = c->chain; rsc_error_cause(e); e = rsc_error_cause(e))
		;
	ck_assert_msg(rsc_error_errno(e) == c->first_err, "the first error %s is lost: the deepest is %s",
		      rsc_err_name(c->first_err), rsc_err_name(rsc_error_errno(e)));
}

/* Failing exits on a clean close: the first exit's error must come out. */
static void prepare_failing_exits_clean(struct af_ctx *c)
{
	prepare_failing_exits(c);
	c->first_err = -EIO;
}

static int call_nothing(struct af_ctx *c)
{
	(void)c;
	return 0;
}

static void release_cb(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	(void)res;
	((struct af_ctx *)data)->cbs++;
}

/* An early release whose exit fails: its callback once, the error kept. */
static void prepare_release(struct af_ctx *c)
{
	prepare_scope(c);
	ck_assert_int_eq(rsc_defer(c->s, fail_exit, c, &c->e), 0);
}

static int call_release(struct af_ctx *c)
{
	return rsc_entry_release(c->e, release_cb, c);
}

static void finish_release(struct af_ctx *c, int ret)
{
	if (ret == 0)
		run_until(c->loop, &c->cbs);
	close_scope(c, &c->s);
}

static void verify_release(struct af_ctx *c, int ret)
{
	ck_assert_int_eq(c->exits, 1);
	ck_assert_int_eq(c->cbs, ret == 0 ? 1 : 0);
}

/* An entered file, so that its early release is a close through the ring. */
static void prepare_open_entered(struct af_ctx *c)
{
	prepare_scope(c);
	ck_assert_int_eq(rsc_open(c->s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &c->e), 0);
	ck_assert_int_ge(rsc_entry_wait(c->e), 0);
}

/* The close leaves the ownership ledger when it is submitted, not when it
 * settles: with no memory then, the number came back to the kernel still
 * owned, and an rsc_adopt of its reuse was refused (-EEXIST). */
static int call_release_file(struct af_ctx *c)
{
	int ret = rsc_entry_release(c->e, release_cb, c);

	if (ret == 0)
		run_until(c->loop, &c->cbs);
	return ret;
}

static void finish_close_only(struct af_ctx *c, int ret)
{
	(void)ret;
	close_scope(c, &c->s);
}

static void verify_released_once(struct af_ctx *c, int ret)
{
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(c->cbs, 1);
}

static int call_release_wait(struct af_ctx *c)
{
	struct rsc_error *err = NULL;
	int ret = rsc_entry_release_wait(c->e, &err);

	/* The exit's error, and its chain of one (rsc_entry_release_wait(3)), memory or not. */
	ck_assert_int_eq(ret, -EIO);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_errno(err), ret);
	rsc_error_free(err);
	return 0;
}

static void verify_release_wait(struct af_ctx *c, int ret)
{
	(void)ret;
	ck_assert_int_eq(c->exits, 1);
}

static int call_audit_full(struct af_ctx *c)
{
	int ret = rsc_loop_set_audit(c->loop, RSC_AUDIT_FULL);

	if (ret < 0)
		return ret;
	ret = rsc_scope_open(c->loop, NULL, "audited", &c->other);
	if (ret == 0)
		ret = rsc_open(c->other, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, NULL);
	return ret;
}

static int call_inbox(struct af_ctx *c)
{
	return rsc_inbox(c->s, t_count_arrival, &c->cbs, &c->e);
}

static void io_done(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)res;
	(void)buf;
	((struct af_ctx *)data)->io_done++;
}

static char af_buf[64];

/* Tracked I/O: each call that returned 0 has exactly one callback. */
static int call_read_write(struct af_ctx *c)
{
	int ret = rsc_write(c->e, "ping", 4, -1, io_done, c);

	if (ret < 0)
		return ret;
	c->io_started++;
	ret = rsc_read(c->e, af_buf, sizeof(af_buf), -1, io_done, c);
	if (ret < 0)
		return ret;
	c->io_started++;
	/* One that never completes: the close must cancel it. */
	ret = rsc_read(c->e, af_buf, sizeof(af_buf), -1, io_done, c);
	if (ret == 0)
		c->io_started++;
	return ret;
}

static void finish_read_write(struct af_ctx *c, int ret)
{
	char echo[8];

	(void)ret;
	/* The peer answers the write, so that the first read completes. */
	(void)rsc_loop_run(c->loop, RSC_RUN_NOWAIT);
	if (c->io_started && recv(c->peer, echo, sizeof(echo), MSG_DONTWAIT) > 0)
		ck_assert_int_gt(write(c->peer, "pong", 4), 0);
	finish_close(c, ret);
}

static void verify_io(struct af_ctx *c, int ret)
{
	(void)ret;
	ck_assert_int_eq(c->io_done, c->io_started);
}

static void graceful_closed(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	(void)s;
	(void)err;
	((struct af_ctx *)data)->cbs++;
	((struct af_ctx *)data)->close_ret = status;
}

static void prepare_graceful(struct af_ctx *c)
{
	prepare_multishot(c);
	ck_assert_int_eq(rsc_read(c->e, af_buf, sizeof(af_buf), -1, io_done, c), 0);
	c->io_started = 1;
}

static int call_graceful(struct af_ctx *c)
{
	int ret = rsc_scope_close_graceful(c->s, 20, graceful_closed, c);

	if (ret == 0)
		c->s = NULL; /* the callback says how it ended */
	return ret;
}

static void finish_graceful(struct af_ctx *c, int ret)
{
	if (ret == 0)
		run_until(c->loop, &c->cbs);
	ck_assert_int_eq(c->cbs, ret == 0 ? 1 : 0);
	close_scope(c, &c->s);
}

/* Errors raised in a child and in its parent while the chain cannot grow. */
static void prepare_child_errors(struct af_ctx *c)
{
	int i;

	prepare_scope(c);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(rsc_defer(c->s, fail_exit, c, NULL), 0);
	ck_assert_int_eq(rsc_scope_open(c->loop, c->s, "child", &c->other), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(rsc_defer(c->other, fail_exit, c, NULL), 0);
	c->first_err = -EIO; /* the child unwinds first: its newest exit */
}

static void finish_child_errors(struct af_ctx *c, int ret)
{
	(void)ret;
	c->other = NULL; /* the parent's close takes it along */
	close_scope(c, &c->s);
}

static void child_closed(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	(void)s;
	(void)status;
	(void)err;
	((struct af_ctx *)data)->posts = 1;
}

/* The child failed on its own first, then its parent. */
static int call_fail_child_then_parent(struct af_ctx *c)
{
	int ret = rsc_scope_fail(c->other, -ENOSPC, "child body");

	if (ret < 0) {
		c->first_err = -EIO;
		return ret;
	}
	c->first_err = -ENOSPC;
	ck_assert_int_eq(rsc_scope_on_close(c->other, child_closed, c), 0);
	run_until(c->loop, &c->posts); /* the child unwinds now, on its own */
	ret = rsc_scope_fail(c->s, -EPIPE, "parent body");
	/* A child that failed on its own has its parent's error as its cause. */
	if (ret == 0)
		c->first_err = -EPIPE;
	return ret;
}

static int call_metrics(struct af_ctx *c)
{
	FILE *f = tmpfile();
	int ret;

	ck_assert_ptr_nonnull(f);
	ret = rsc_loop_set_metrics(c->loop, RSC_METRICS_LATENCY);
	if (ret == 0)
		ret = rsc_metrics_write(&c->loop, 1, f);
	fclose(f);
	return ret;
}

/* An acquire in flight at the close: its cancel needs an op, and a backlog without one. */
static void prepare_cancel(struct af_ctx *c)
{
	prepare_scope(c);
	c->lfd = t_full_unix_listener(&c->sun, c->fill, &c->nfill);
	c->allowed_close_err = -ECANCELED;
}

static int call_cancel(struct af_ctx *c)
{
	int ret = rsc_connect(c->s, (struct sockaddr *)&c->sun, sizeof(c->sun), 0, 0, &c->e);

	if (ret == 0)
		(void)rsc_loop_run(c->loop, RSC_RUN_NOWAIT);
	return ret;
}

/* A descriptor left open inside a fully audited scope: a finding to record. */
static int call_audit_finding(struct af_ctx *c)
{
	int ret = rsc_loop_set_audit(c->loop, RSC_AUDIT_FULL);

	if (ret == 0)
		ret = rsc_scope_open(c->loop, NULL, "leaky", &c->other);
	if (ret == 0) {
		c->fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		ck_assert_int_ge(c->fd, 0);
		ret = rsc_open(c->other, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, NULL);
	}
	return ret;
}

static void verify_audit_finding(struct af_ctx *c, int ret)
{
	(void)ret;
	/* One finding, or none when it found no memory; never a false one. */
	ck_assert_int_le(rsc_audit_count(c->loop), 1);
	ck_assert_int_eq(rsc_audit_clear(c->loop), 0);
}

/* A slot made a descriptor: its move needs an op pair, and a record of its own. */
static void prepare_install(struct af_ctx *c)
{
	prepare_direct(c);
	ck_assert_int_eq(rsc_open(c->s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &c->e), 0);
	ck_assert_int_ge(rsc_entry_wait(c->e), 0);
}

static int call_install(struct af_ctx *c)
{
	return rsc_entry_install(c->e, 0, release_cb, c);
}

static void finish_install(struct af_ctx *c, int ret)
{
	if (ret == 0)
		run_until(c->loop, &c->cbs);
	close_scope(c, &c->s);
}

static void verify_install(struct af_ctx *c, int ret)
{
	ck_assert_int_eq(c->cbs, ret == 0 ? 1 : 0);
	ck_assert_int_eq(rsc_loop_direct_used(c->loop), 0);
}

/* A new direct table refused for memory: the loop keeps the one it had. */
static int call_set_direct(struct af_ctx *c)
{
	return rsc_loop_set_direct(c->loop, 32, 8);
}

static void verify_set_direct(struct af_ctx *c, int ret)
{
	(void)ret;
	ck_assert_int_eq(rsc_loop_direct_used(c->loop), 0); /* not -ENXIO: a table */
	ck_assert_int_eq(t_audit_slots(c->loop), 0);
}

/* A descriptor detached under the full audit is the caller's: no finding, memory or not. */
static int call_detach_audited(struct af_ctx *c)
{
	int sv[2], ret, fd;

	/* Made before the audited scope: foreign to it, as the caller's. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	c->peer = sv[1];
	c->fd = sv[0];
	ret = rsc_loop_set_audit(c->loop, RSC_AUDIT_FULL);
	if (ret == 0)
		ret = rsc_scope_open(c->loop, NULL, "audited", &c->other);
	if (ret < 0)
		return ret;
	ret = rsc_adopt(c->other, sv[0], 0, &c->e);
	if (ret < 0)
		return ret; /* the caller's still */
	c->fd = -1;
	fd = rsc_entry_detach(c->e);
	ck_assert_int_eq(fd, sv[0]);
	c->fd = fd;
	return 0;
}

static void verify_no_finding(struct af_ctx *c, int ret)
{
	(void)ret;
	ck_assert_int_eq(rsc_audit_count(c->loop), 0);
}

static const struct af_case cases[] = {
	{ "scope_open", NULL, call_scope_open, finish_close, NULL, 0, 0, false, false },
	{ "scope_open_nested", prepare_scope, call_scope_open_nested, finish_close, NULL, 0, 0, false, false },
	{ "open", prepare_scope, call_open, finish_close, NULL, 0, 0, false, false },
	{ "open_long_path", prepare_scope, call_open_long_path, finish_close, NULL, 0, 0, false, false },
	{ "socket", prepare_scope, call_socket, finish_close, NULL, 0, IORING_OP_SOCKET, false, false },
	{ "pipe", prepare_scope, call_pipe, finish_close, NULL, 0, OP_PIPE, false, false },
	{ "adopt", prepare_pair, call_adopt, finish_close, NULL, 0, 0, false, false },
	{ "defer", prepare_scope, call_defer, finish_close, verify_defer, 0, 0, false, false },
	{ "push", prepare_push, call_push, finish_close, verify_push, 0, 0, false, false },
	{ "timer", prepare_scope, call_timer, finish_close, NULL, 0, IORING_OP_TIMEOUT, false, false },
	{ "set_deadline", prepare_scope, call_deadline, finish_close, verify_deadline, 0, 0, false, false },
	{ "loop_post", NULL, call_post, finish_post, verify_post, 0, 0, false, false },
	{ "trace_file", NULL, call_trace_file, finish_trace, verify_trace, 0, 0, false, false },
	{ "chain", prepare_direct, call_chain, finish_close, NULL, 0, IORING_OP_SOCKET, false, false },
	/* rsc_listen(3) and rsc_connect(3) make their socket with IORING_OP_SOCKET. */
	{ "listen_accept", prepare_scope, call_listen_accept, finish_close, verify_accept, 0,
	  IORING_OP_SOCKET, true, false },
	{ "recv_multishot", prepare_multishot, call_recv_multishot, finish_close, verify_recv, 0,
	  IORING_OP_PROVIDE_BUFFERS, false, false },
	{ "set_recv_buffers", prepare_multishot, call_recv_buffers, finish_close, verify_recv, 0,
	  IORING_OP_PROVIDE_BUFFERS, false, false },
	{ "scope_fail_failing_exits", prepare_failing_exits, call_scope_fail, finish_failing,
	  verify_failing, 0, 0, false, false },
	{ "failing_exits", prepare_failing_exits_clean, call_nothing, finish_failing,
	  verify_failing, 0, 0, false, false },
	{ "entry_release", prepare_release, call_release, finish_release, verify_release, 0, 0, false, false },
	{ "entry_release_wait", prepare_release, call_release_wait, finish_failing,
	  verify_release_wait, 0, 0, false, false },
	{ "audit_full", NULL, call_audit_full, finish_close, NULL, 0, 0, false, false },
	{ "inbox", prepare_direct, call_inbox, finish_close, NULL, 0, IORING_OP_MSG_RING, false, false },
	{ "read_write", prepare_multishot, call_read_write, finish_read_write, verify_io, 0, 0, false, false },
	{ "release_file", prepare_open_entered, call_release_file, finish_close_only,
	  verify_released_once, 0, 0, false, true },
	{ "close_graceful", prepare_graceful, call_graceful, finish_graceful, verify_io, 0, 0, false, true },
	{ "child_errors", prepare_child_errors, call_nothing, finish_child_errors, verify_failing, 0, 0,
	  false, false },
	{ "child_then_parent_fail", prepare_child_errors, call_fail_child_then_parent,
	  finish_child_errors, verify_failing, 0, 0, false, false },
	{ "metrics", NULL, call_metrics, finish_close, NULL, 0, 0, false, false },
	{ "cancel_in_flight", prepare_cancel, call_cancel, finish_close, NULL, 0, IORING_OP_SOCKET,
	  true, false },
	{ "audit_finding", NULL, call_audit_finding, finish_close, verify_audit_finding, 0, 0, false, false },
	{ "detach_audited", NULL, call_detach_audited, finish_close, verify_no_finding, 0, 0, true, false },
	{ "set_direct", prepare_direct, call_set_direct, finish_close, verify_set_direct, 0, 0, false, false },
	{ "entry_install", prepare_install, call_install, finish_install, verify_install, 0,
	  OP_FIXED_FD_INSTALL, false, false },
};

#define N_CASES ((int)(sizeof(cases) / sizeof(cases[0])))

/* alloc:@nth:ENOMEM, and with @burst the 15 after it too. */
static void set_alloc_faults(struct rsc_loop *loop, int nth, bool burst)
{
	char spec[512];
	size_t used = 0;
	int i;

	for (i = 0; i < (burst ? 16 : 1); i++)
		used += (size_t)snprintf(spec + used, sizeof(spec) - used, "%salloc:%d:ENOMEM",
					 i ? "," : "", nth + i);
	ck_assert_int_eq(rsc_fault_set(loop, spec), 0);
}

/* After the faults: a scope, a file, a close; all released. */
static void assert_loop_still_works(struct rsc_loop *loop)
{
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(loop, NULL, "after", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, NULL), 0);
	run_dry(loop);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}

/* One run of @k with allocation @nth failing; true if a fault was injected. */
/*
 * Receives in flight on a scope of their own until the op pool is used up
 * and cannot grow: what the case does next needs the heap for every op.
 */
static void starve_op_pool(struct af_ctx *side)
{
	static char bufs[600][8];
	int i, ret = 0;

	prepare_multishot(side);
	ck_assert_int_eq(rsc_fault_set(side->loop, "alloc:1:ENOMEM"), 0);
	for (i = 0; i < 600 && ret == 0; i++) {
		ret = rsc_recv(side->e, bufs[i], sizeof(bufs[i]), 0, io_done, side);
		side->io_started += ret == 0;
	}
	ck_assert_int_eq(ret, -ENOMEM);
}

static void end_starving(struct af_ctx *side)
{
	ck_assert_int_eq(rsc_scope_close_wait(side->s, NULL), 0);
	ck_assert_int_eq(side->io_done, side->io_started);
	close(side->peer);
}

static bool run_case(const struct af_case *k, int nth, bool burst, bool starve)
{
	struct af_ctx c = { .peer = -1, .fd = -1, .lfd = -1 }, side = { .peer = -1 };
	int before = t_fd_count(), ret;
	long long injected, injected_before;

	ck_assert_int_eq(rsc_loop_new(&c.loop, 64, k->loop_flags), 0);
	if (k->prepare)
		k->prepare(&c);
	side.loop = c.loop;
	if (starve)
		starve_op_pool(&side);
	injected_before = rsc_loop_counter(c.loop, RSC_CTR_FAULTS_INJECTED);
	set_alloc_faults(c.loop, nth, burst);
	ret = k->call(&c);
	ck_assert_msg(ret == 0 || ret == -ENOMEM, "%s, allocation %d failing: %s (%s)", k->name,
		      nth, rsc_strerror(ret), rsc_last_error());
	k->finish(&c, ret);
	injected = rsc_loop_counter(c.loop, RSC_CTR_FAULTS_INJECTED) - injected_before;
	ck_assert_int_eq(rsc_fault_set(c.loop, NULL), 0);
	if (starve)
		end_starving(&side);
	run_dry(c.loop);
	if (k->verify)
		k->verify(&c, ret);
	rsc_error_free(c.chain);
	/* Exactly once: every entry that was acquired was released. */
	ck_assert_msg(k->compound || rsc_loop_counter(c.loop, RSC_CTR_ACQUIRED) ==
		      rsc_loop_counter(c.loop, RSC_CTR_RELEASED),
		      "%s, allocation %d failing: %lld acquired, %lld released", k->name, nth,
		      rsc_loop_counter(c.loop, RSC_CTR_ACQUIRED),
		      rsc_loop_counter(c.loop, RSC_CTR_RELEASED));
	assert_loop_still_works(c.loop);
	ck_assert_int_eq(rsc_loop_close(c.loop), 0);
	if (c.peer >= 0)
		close(c.peer);
	if (c.fd >= 0)
		close(c.fd); /* a refused adopt leaves it the caller's */
	if (c.lfd >= 0)
		t_full_unix_listener_close(c.lfd, c.fill, c.nfill);
	ck_assert_msg(t_fd_count() == before, "%s, allocation %d failing: %d descriptors left open",
		      k->name, nth, t_fd_count() - before);
	return injected > 0;
}

/* What the loops of this run lack that @k needs, or NULL: its opcode, and for a
 * multishot receive the kernel's flag too (helpers.h). */
static const char *case_lacks(const struct af_case *k)
{
	if (k->need_opcode && !t_kernel_has(k->need_opcode))
		return "the case's opcode";
	if (k->prepare == prepare_multishot && !t_has_recv_multishot())
		return "IORING_RECV_MULTISHOT (Linux 6.0)";
	return NULL;
}

static void run_all_nth(int i, bool burst, bool starve)
{
	const struct af_case *k = &cases[i];
	int nth;

	if (case_lacks(k)) {
		printf("SKIP %s: the loops of this run lack %s\n", k->name, case_lacks(k));
		return;
	}
	for (nth = 1; nth < MAX_NTH; nth++)
		if (!run_case(k, nth, burst, starve)) {
			/* A case whose call allocates nothing would test nothing. */
			ck_assert_msg(nth > 1 || k->allocates_nothing, "%s made no allocation", k->name);
			/* (A starved op pool is grown for the grace's timer.) */
			ck_assert_msg(nth == 1 || !k->allocates_nothing || starve, "%s made %d allocations",
				      k->name, nth - 1);
			return; /* it ran with no fault left */
		}
	ck_abort_msg("%s still met a fault at allocation %d", k->name, MAX_NTH);
}

START_TEST(each_allocation_failing_once_fails_cleanly)
{
	run_all_nth(_i, false, false);
}
END_TEST

START_TEST(each_allocation_failing_in_a_burst_fails_cleanly)
{
	run_all_nth(_i, true, false);
}
END_TEST

/* The same with the op pool used up first: every op the case needs is an allocation. */
START_TEST(each_allocation_failing_with_the_op_pool_used_up_fails_cleanly)
{
	run_all_nth(_i, true, true);
}
END_TEST

/*
 * The class of bugs 50 and 53: a call that allocates each time it runs,
 * freed again, which no leak check sees. Every case of the table, run three
 * times on one loop: the first two warm its pools, the third runs with
 * alloc:1:ENOMEM set from its call to its last completion, and must fire no
 * rule. The few that allocate by design are listed here with the reason.
 */
static const struct {
	const char *name, *why;
} steady_allocators[] = {
	{ "open_long_path", "a path longer than the entry's inline detail is copied to the heap" },
	{ "loop_post", "a post is made on any thread: its node is the poster's malloc" },
	{ "trace_file", "a trace file has its own buffer" },
	{ "chain", "a chain is built on the heap (rsc_chain_new) and runs with a record of its ops" },
	{ "set_recv_buffers", "the buffers themselves" },
	{ "scope_fail_failing_exits", "errors are heap objects handed to the caller (rsc_error_free)" },
	{ "failing_exits", "errors are heap objects handed to the caller" },
	{ "entry_release_wait", "errors are heap objects handed to the caller" },
	{ "child_errors", "errors are heap objects handed to the caller" },
	{ "child_then_parent_fail", "errors are heap objects handed to the caller" },
	{ "audit_finding", "findings are heap objects handed to the caller" },
	{ "audit_full", "the full audit reads /proc/self/fd into sets of its own" },
	{ "detach_audited", "the full audit reads /proc/self/fd into sets of its own" },
	{ "inbox", "an inbox is made once per loop, with its place in the process-wide table" },
	{ "metrics", "writing metrics formats them" },
	{ "set_direct", "the direct table itself" },
};

static const char *steady_allocation_reason(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(steady_allocators) / sizeof(steady_allocators[0]); i++)
		if (strcmp(steady_allocators[i].name, name) == 0)
			return steady_allocators[i].why;
	return NULL;
}

/* One run of @k on @loop, warm-up or measured; the faults injected in it. */
static long long run_case_on(const struct af_case *k, struct rsc_loop *loop, bool measured)
{
	struct af_ctx c = { .peer = -1, .fd = -1, .lfd = -1, .loop = loop };
	long long injected = rsc_loop_counter(loop, RSC_CTR_FAULTS_INJECTED);
	int ret;

	if (k->prepare)
		k->prepare(&c);
	if (measured)
		ck_assert_int_eq(rsc_fault_set(loop, "alloc:1:ENOMEM"), 0);
	ret = k->call(&c);
	ck_assert_msg(ret == 0 || (measured && ret == -ENOMEM), "%s: %s (%s)", k->name,
		      rsc_strerror(ret), rsc_last_error());
	k->finish(&c, ret);
	run_dry(loop);
	injected = rsc_loop_counter(loop, RSC_CTR_FAULTS_INJECTED) - injected;
	ck_assert_int_eq(rsc_fault_set(loop, NULL), 0);
	if (k->verify && injected == 0)
		k->verify(&c, ret);
	rsc_error_free(c.chain);
	if (c.peer >= 0)
		close(c.peer);
	if (c.fd >= 0)
		close(c.fd);
	if (c.lfd >= 0)
		t_full_unix_listener_close(c.lfd, c.fill, c.nfill);
	return injected;
}

START_TEST(each_case_in_steady_state_allocates_nothing)
{
	const struct af_case *k = &cases[_i];
	const char *why = steady_allocation_reason(k->name);
	struct rsc_loop *loop;
	int before = t_fd_count(), round;
	long long injected = 0;

	if (case_lacks(k)) {
		printf("SKIP %s: the loops of this run lack %s\n", k->name, case_lacks(k));
		return;
	}
	ck_assert_int_eq(rsc_loop_new(&loop, 64, k->loop_flags), 0);
	for (round = 0; round < 3; round++)
		injected = run_case_on(k, loop, round == 2);
	if (getenv("STEADY_REPORT"))
		printf("steady %s: %lld\n", k->name, injected);
	if (why)
		ck_assert_msg(injected > 0, "%s allocates nothing in steady state now: drop it from the list (%s)",
			      k->name, why);
	else
		ck_assert_msg(injected == 0, "%s allocated in steady state (an alloc rule fired)", k->name);
	ck_assert_int_eq(rsc_loop_close(loop), 0);
	ck_assert_msg(t_fd_count() == before, "%s: %d descriptors left open", k->name,
		      t_fd_count() - before);
}
END_TEST

/* A timer's callback: its result, and a second call shows as -EEXIST. */
static void count_timer(struct rsc_entry *e, int res, void *buf, void *data)
{
	int *seen = data;

	(void)e;
	(void)buf;
	*seen = *seen == 1 ? res : -EEXIST;
}

static void count_closed(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	(void)s;
	(void)err;
	*(int *)data = status == 0 ? 1 : status;
}

/*
 * The op pool is used up by receives in flight, and the heap stays
 * exhausted for the 16 allocations after: the close's cancels find no op
 * and no room in their backlog, yet the scope still closes (nothing left in
 * flight forever) and every receive ends with exactly one callback.
 */
START_TEST(close_cancels_io_when_the_op_pool_cannot_grow)
{
	static char bufs[600][8];
	struct af_ctx c = { .peer = -1, .fd = -1, .lfd = -1 };
	struct t_guard g;
	int i, ret = 0, closed = 0;
	int before = t_fd_count();

	ck_assert_int_eq(rsc_loop_new(&c.loop, 64, 0), 0);
	prepare_multishot(&c);
	t_guard_start(&g, c.loop, 5000);
	ck_assert_int_ge(rsc_loop_run(c.loop, RSC_RUN_NOWAIT), 0); /* the guard's timeout starts */
	set_alloc_faults(c.loop, 1, true);
	/* Receives until one finds the pool empty and no memory to grow it. */
	for (i = 0; i < 600 && ret == 0; i++) {
		ret = rsc_recv(c.e, bufs[i], sizeof(bufs[i]), 0, io_done, &c);
		if (ret == 0)
			c.io_started++;
		else
			ck_assert_int_eq(ret, -ENOMEM);
	}
	ck_assert_int_eq(ret, -ENOMEM);
	ck_assert_int_eq(rsc_scope_close(c.s, count_closed, &closed), 0);
	while (!closed && !g.fired)
		ck_assert_int_ge(rsc_loop_run(c.loop, RSC_RUN_ONCE), 0);
	ck_assert_msg(closed, "the scope did not close in 5 s: %d of %d receives ended", c.io_done,
		      c.io_started);
	ck_assert_int_eq(c.io_done, c.io_started);
	t_guard_stop(&g);
	ck_assert_int_eq(rsc_fault_set(c.loop, NULL), 0);
	run_dry(c.loop);
	assert_loop_still_works(c.loop);
	ck_assert_int_eq(rsc_loop_close(c.loop), 0);
	close(c.peer);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * As above, but nothing else completes meanwhile: the receives that used the
 * pool up stay idle on another scope. A cancel that found no memory is sent
 * again on a later turn, which must come without waiting for a completion.
 */
START_TEST(cancel_without_memory_is_retried_with_nothing_completing)
{
	static char bufs[600][8];
	struct af_ctx c = { .peer = -1, .fd = -1, .lfd = -1 }, b = { .peer = -1 };
	struct t_guard g;
	int i, ret = 0, closed = 0;
	int before = t_fd_count();

	ck_assert_int_eq(rsc_loop_new(&c.loop, 64, 0), 0);
	prepare_multishot(&c);
	b.loop = c.loop;
	prepare_multishot(&b);
	ck_assert_int_eq(rsc_recv(b.e, bufs[599], sizeof(bufs[599]), 0, io_done, &b), 0);
	t_guard_start(&g, c.loop, 5000);
	ck_assert_int_ge(rsc_loop_run(c.loop, RSC_RUN_NOWAIT), 0); /* the guard's timeout starts */
	set_alloc_faults(c.loop, 1, true);
	for (i = 0; i < 599 && ret == 0; i++) {
		ret = rsc_recv(c.e, bufs[i], sizeof(bufs[i]), 0, io_done, &c);
		c.io_started += ret == 0;
	}
	ck_assert_int_eq(ret, -ENOMEM);
	ck_assert_int_eq(rsc_scope_close(b.s, count_closed, &closed), 0);
	while (!closed && !g.fired)
		ck_assert_int_ge(rsc_loop_run(c.loop, RSC_RUN_ONCE), 0);
	ck_assert_msg(closed, "the scope did not close before the 5 s guard");
	ck_assert_int_eq(b.io_done, 1);
	ck_assert_int_eq(c.io_done, 0);
	t_guard_stop(&g);
	ck_assert_int_eq(rsc_fault_set(c.loop, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(c.s, NULL), 0);
	ck_assert_int_eq(c.io_done, c.io_started);
	run_dry(c.loop);
	ck_assert_int_eq(rsc_loop_close(c.loop), 0);
	close(c.peer);
	close(b.peer);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * A timer whose timeout cannot start for lack of memory (the op pool used
 * up, and no room to grow it) hears -ENOMEM, as rsc_timer(3) says, not the
 * -EBUSY of a full SQ; exactly once.
 */
START_TEST(timer_that_cannot_start_for_memory_hears_enomem)
{
	static char bufs[600][8];
	struct af_ctx c = { .peer = -1, .fd = -1, .lfd = -1 };
	int i, ret = 0, res = 1;
	int before = t_fd_count();

	ck_assert_int_eq(rsc_loop_new(&c.loop, 64, 0), 0);
	prepare_multishot(&c);
	ck_assert_int_eq(rsc_timer(c.s, 60000, count_timer, &res, NULL), 0);
	set_alloc_faults(c.loop, 1, true);
	for (i = 0; i < 599 && ret == 0; i++) {
		ret = rsc_recv(c.e, bufs[i], sizeof(bufs[i]), 0, io_done, &c);
		c.io_started += ret == 0;
	}
	ck_assert_int_eq(ret, -ENOMEM);
	/* The timer's entry enters, and its timeout finds no op. */
	for (i = 0; i < 100 && res == 1; i++)
		ck_assert_int_ge(rsc_loop_run(c.loop, RSC_RUN_NOWAIT), 0);
	ck_assert_msg(res == -ENOMEM, "the timer heard %s", rsc_err_name(res));
	ck_assert_int_eq(rsc_fault_set(c.loop, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(c.s, NULL), 0);
	ck_assert_int_eq(c.io_done, c.io_started);
	ck_assert_int_eq(res, -ENOMEM); /* once: not again at the close */
	run_dry(c.loop);
	ck_assert_int_eq(rsc_loop_close(c.loop), 0);
	close(c.peer);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* A compound push (socket, then listen) refused with -ENOMEM made nothing: no socket came and went. */
START_TEST(refused_listen_acquires_nothing)
{
	int before = t_fd_count(), nth, ret = -ENOMEM;

	for (nth = 1; nth < MAX_NTH && ret == -ENOMEM; nth++) {
		struct sockaddr_in to = t_loopback(0);
		struct rsc_loop *loop;
		struct rsc_scope *s;
		int i;

		ck_assert_int_eq(rsc_loop_new(&loop, 64, 0), 0);
		ck_assert_int_eq(rsc_scope_open(loop, NULL, "l", &s), 0);
		set_alloc_faults(loop, nth, false);
		ret = rsc_listen(s, (struct sockaddr *)&to, sizeof(to), 4, 0, NULL);
		ck_assert_msg(ret == 0 || ret == -ENOMEM, "rsc_listen: %s", rsc_err_name(ret));
		for (i = 0; i < 4; i++)
			ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_NOWAIT), 0);
		if (ret == -ENOMEM) {
			ck_assert_int_eq(rsc_loop_counter(loop, RSC_CTR_ACQUIRED), 0);
			ck_assert_int_eq(rsc_loop_counter(loop, RSC_CTR_ENTER_FAILED), 0);
		}
		ck_assert_int_eq(rsc_fault_set(loop, NULL), 0);
		(void)rsc_scope_close_wait(s, NULL);
		ck_assert_int_eq(rsc_loop_close(loop), 0);
		ck_assert_int_eq(t_fd_count(), before);
	}
	ck_assert_int_eq(ret, 0);
	ck_assert_int_gt(nth, 2); /* some allocation of it did fail */
}
END_TEST

/*
 * A connection accepted into a slot that nobody can own for want of memory
 * (no scope for it, and no op for the slot's close_direct): the slot is
 * still emptied, never left holding the connection until the loop goes.
 */
START_TEST(orphan_slot_without_memory_is_still_emptied)
{
	struct af_ctx c = { .peer = -1, .fd = -1, .lfd = -1 }, side = { .peer = -1 };
	struct sockaddr_in to = t_loopback(0);
	socklen_t len = sizeof(to);
	int before = t_fd_count(), i, client;

	if (!t_kernel_has(IORING_OP_ACCEPT) || !t_kernel_has(IORING_OP_SOCKET)) {
		printf("SKIP orphan_slot_without_memory_is_still_emptied: kernel lacks accept or socket\n");
		return;
	}
	ck_assert_int_eq(rsc_loop_new(&c.loop, 64, 0), 0);
	ck_assert_int_eq(rsc_loop_set_direct(c.loop, 16, 4), 0);
	prepare_scope(&c);
	ck_assert_int_eq(rsc_listen(c.s, (struct sockaddr *)&to, sizeof(to), 8, 0, &c.e), 0);
	ck_assert_int_ge(rsc_entry_wait(c.e), 0);
	ck_assert_int_eq(rsc_entry_sockname(c.e, (struct sockaddr *)&to, &len), 0);
	ck_assert_int_eq(rsc_accept(c.e, RSC_ACCEPT_MULTISHOT | RSC_DIRECT, count_accept, &c), 0);
	ck_assert_int_ge(rsc_loop_run(c.loop, RSC_RUN_NOWAIT), 0);
	side.loop = c.loop;
	starve_op_pool(&side);
	set_alloc_faults(c.loop, 1, true);
	client = t_connect(&to);
	for (i = 0; i < 200 && rsc_loop_counter(c.loop, RSC_CTR_NOMEM_DROPS) == 0; i++) {
		ck_assert_int_ge(rsc_loop_run(c.loop, RSC_RUN_NOWAIT), 0);
		usleep(1000);
	}
	/* Arrived, and closed by the runtime: no scope could be made for it.
	 * Counted as such (not as a late acquire), and heard as -ENOMEM. */
	ck_assert_int_eq(rsc_loop_counter(c.loop, RSC_CTR_NOMEM_DROPS), 1);
	ck_assert_int_eq(rsc_loop_counter(c.loop, RSC_CTR_LATE_ACQUIRES), 0);
	ck_assert_int_eq(c.cbs, 1);
	ck_assert_int_eq(rsc_fault_set(c.loop, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(c.s, NULL), 0);
	end_starving(&side);
	run_dry(c.loop);
	ck_assert_int_eq(rsc_loop_direct_used(c.loop), 0);
	ck_assert_int_eq(t_audit_slots(c.loop), 0);
	ck_assert_int_eq(rsc_loop_close(c.loop), 0);
	close(client);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * rsc_loop_shutdown with allocations failing: every scope still unwinds, each
 * exit runs once, the first error comes out (never 0), nothing is left open.
 */
START_TEST(shutdown_without_memory_releases_everything)
{
	int before = t_fd_count(), nth, ret;

	/* The exits' three error nodes are allocations: the first runs meet faults. */
	for (nth = 1; nth <= 40; nth++) {
		struct af_ctx c = { .peer = -1, .fd = -1, .lfd = -1 };
		struct rsc_error *err = NULL;
		struct rsc_scope *child;
		int i;

		ck_assert_int_eq(rsc_loop_new(&c.loop, 64, 0), 0);
		prepare_scope(&c);
		ck_assert_int_eq(rsc_scope_open(c.loop, c.s, "child", &child), 0);
		for (i = 0; i < 3; i++) {
			ck_assert_int_eq(rsc_open(c.s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, NULL), 0);
			ck_assert_int_eq(rsc_defer(child, fail_exit, &c, NULL), 0);
		}
		ck_assert_int_ge(rsc_loop_run(c.loop, RSC_RUN_NOWAIT), 0);
		set_alloc_faults(c.loop, nth, true);
		ret = rsc_loop_shutdown(c.loop, &err);
		ck_assert_msg(ret == -EIO || ret == -EPERM || ret == -EROFS,
			      "allocation %d failing: shutdown said %s", nth, rsc_err_name(ret));
		ck_assert_ptr_nonnull(err);
		ck_assert_int_eq(rsc_error_errno(err), ret);
		rsc_error_free(err);
		ck_assert_int_eq(c.exits, 3);
		ck_assert_int_eq(t_fd_count(), before);
	}
}
END_TEST

/* alloc:N through RINGSCOPE_FAULT: the loop's own allocations, from the first. */
START_TEST(loop_new_each_allocation_fails_cleanly)
{
	static const unsigned flags[] = { 0, RSC_LOOP_DIRECT, RSC_LOOP_POLLABLE };
	unsigned f = flags[_i];
	int before = t_fd_count(), nth;
	char spec[64];

	for (nth = 1; nth < MAX_NTH; nth++) {
		struct rsc_loop *loop = (struct rsc_loop *)1;
		long long injected;
		int ret;

		snprintf(spec, sizeof(spec), "alloc:%d:ENOMEM", nth);
		ck_assert_int_eq(setenv("RINGSCOPE_FAULT", spec, 1), 0);
		ret = rsc_loop_new(&loop, 64, f);
		ck_assert_int_eq(unsetenv("RINGSCOPE_FAULT"), 0);
		ck_assert_msg(ret == 0 || ret == -ENOMEM, "rsc_loop_new, allocation %d failing: %s", nth,
			      rsc_strerror(ret));
		if (ret < 0) {
			ck_assert_ptr_null(loop);
			ck_assert_int_eq(t_fd_count(), before);
			continue;
		}
		injected = rsc_loop_counter(loop, RSC_CTR_FAULTS_INJECTED);
		ck_assert_int_eq(rsc_fault_set(loop, NULL), 0);
		assert_loop_still_works(loop);
		ck_assert_int_eq(rsc_loop_close(loop), 0);
		ck_assert_int_eq(t_fd_count(), before);
		if (!injected)
			return; /* it ran with no fault left */
	}
	ck_abort_msg("rsc_loop_new still met a fault at allocation %d", MAX_NTH);
}
END_TEST

/* The same on the application's ring: a refusal leaves the ring free for a loop. */
START_TEST(loop_on_the_applications_ring_each_allocation_fails_cleanly)
{
	int before = t_fd_count(), nth;
	long long injected = 1;
	char spec[64];

	for (nth = 1; nth < MAX_NTH && injected; nth++) {
		struct rsc_loop *loop = (struct rsc_loop *)1;
		struct io_uring ring;
		int ret;

		ck_assert_int_eq(io_uring_queue_init(64, &ring, 0), 0);
		snprintf(spec, sizeof(spec), "alloc:%d:ENOMEM", nth);
		ck_assert_int_eq(setenv("RINGSCOPE_FAULT", spec, 1), 0);
		ret = rsc_loop_new_from_ring(&loop, &ring, 0);
		ck_assert_int_eq(unsetenv("RINGSCOPE_FAULT"), 0);
		ck_assert_msg(ret == 0 || ret == -ENOMEM, "allocation %d failing: %s", nth,
			      rsc_strerror(ret));
		if (ret < 0) {
			ck_assert_ptr_null(loop);
			ck_assert_int_eq(rsc_loop_new_from_ring(&loop, &ring, 0), 0); /* not left claimed */
		}
		injected = ret == 0 ? rsc_loop_counter(loop, RSC_CTR_FAULTS_INJECTED) : 1;
		ck_assert_int_eq(rsc_fault_set(loop, NULL), 0);
		ck_assert_int_eq(rsc_loop_close(loop), 0); /* the application runs a shared ring's turns */
		io_uring_queue_exit(&ring);
		ck_assert_int_eq(t_fd_count(), before);
	}
	ck_assert_int_gt(nth, 2);
}
END_TEST

/* rsc_loop_trace_file refused for its buffer leaves the file as it was (it once emptied it). */
START_TEST(refused_trace_file_leaves_the_file_alone)
{
	const char *path = t_path("kept.json");
	FILE *f = fopen(path, "we");
	char *text;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_gt(fputs("precious\n", f), 0);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "alloc:1:ENOMEM"), 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, path), -ENOMEM);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), 1);
	text = t_slurp(path, NULL);
	ck_assert_str_eq(text, "precious\n");
	free(text);
	/* With memory, it traces there. */
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, path), 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	text = t_slurp(path, NULL);
	ck_assert_ptr_nonnull(strstr(text, "traceEvents"));
	free(text);
}
END_TEST

/*
 * A descriptor whose close is prepared but not yet submitted is still its
 * entry's (DESIGN.md 7, rsc_adopt(3)): a second adopt is -EEXIST, even when
 * the ledger's list of closes waiting for their submit cannot grow.
 */
START_TEST(adopt_refused_while_the_close_waits_even_without_memory)
{
	int before = t_fd_count(), nth;

	for (nth = 1; nth <= 8; nth++) {
		struct rsc_loop *loop;
		struct rsc_scope *s;
		struct rsc_entry *e;
		int p[2], ret;

		ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
		ck_assert_int_eq(rsc_loop_new(&loop, 64, 0), 0);
		ck_assert_int_eq(rsc_scope_open(loop, NULL, "s", &s), 0);
		ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
		ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_NOWAIT), 0);
		set_alloc_faults(loop, nth, false);
		ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
		ret = rsc_adopt(s, p[0], 0, NULL);
		/* Never two owners; the adopt's own allocation may be the one failing. */
		ck_assert_msg(ret == -EEXIST || ret == -ENOMEM,
			      "allocation %d failing: a second adopt of the number whose close waits: %s",
			      nth, rsc_err_name(ret));
		ck_assert_int_eq(rsc_fault_set(loop, NULL), 0);
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
		ck_assert_int_eq(rsc_loop_close(loop), 0);
		ck_assert_int_eq(fcntl(p[0], F_GETFD), -1); /* closed once, by its entry */
		close(p[1]);
		ck_assert_int_eq(t_fd_count(), before);
	}
}
END_TEST

struct chunks {
	int total, largest, last;
};

static void on_chunk(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct chunks *c = data;

	(void)e;
	(void)buf;
	if (res <= 0) {
		c->last = res;
		return;
	}
	c->total += res;
	c->largest = res > c->largest ? res : c->largest;
}

/*
 * rsc_loop_set_recv_buffers refused for memory keeps the buffers the loop
 * had (rsc_recv_multishot(3)): receives still come in the old 16-byte
 * buffers, not in a default set made later (it once freed them first).
 */
START_TEST(refused_recv_buffers_keep_the_old_ones)
{
	static const char bytes[100] = "a hundred bytes";
	struct chunks got = { 0, 0, 1 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	int peer, nth, turns;

	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 8, 16), 0);
	for (nth = 1; nth <= 2; nth++) {
		char spec[32];

		snprintf(spec, sizeof(spec), "alloc:%d:ENOMEM", nth);
		ck_assert_int_eq(rsc_fault_set(t_loop, spec), 0);
		ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 8, 64), -ENOMEM);
		ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	}
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "conn", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_recv_multishot(e, 0, on_chunk, &got), 0);
	ck_assert_int_eq(write(peer, bytes, sizeof(bytes)), (int)sizeof(bytes));
	for (turns = 0; got.total < (int)sizeof(bytes) && turns < 1000; turns++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(got.total, (int)sizeof(bytes));
	ck_assert_int_le(got.largest, 16);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_le(got.last, 0); /* its last call came with the release */
	close(peer);
}
END_TEST

/* The kind is refused with any errno but ENOMEM: a malloc fails one way. */
START_TEST(alloc_rule_takes_enomem_only)
{
	ck_assert_int_eq(rsc_fault_set(t_loop, "alloc:1:EIO"), -EINVAL);
	ck_assert_int_eq(rsc_fault_set(t_loop, "alloc:1:ENOMEM"), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
}
END_TEST

static void release_dups(int *dups)
{
	int i;

	for (i = 0; dups[i] >= 0; i++)
		close(dups[i]);
	free(dups);
}

/* Every number below @target taken (dups of one descriptor): the kernel's next
 * is @target. The dups, or NULL if a number at or above it was taken already. */
static int *occupy_below(int target)
{
	int *dups = malloc(sizeof(*dups) * ((size_t)target + 1)), n = 0, base, fd;

	ck_assert_ptr_nonnull(dups);
	base = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(base, 0);
	dups[n++] = base;
	do {
		fd = fcntl(base, F_DUPFD_CLOEXEC, 0);
		ck_assert_int_ge(fd, 0);
		dups[n++] = fd;
	} while (fd < target - 1);
	dups[n] = -1;
	if (fd == target - 1)
		return dups;
	release_dups(dups);
	return NULL;
}

/* An open (or a pipe) whose descriptors land at @target and on, ends entered. */
static struct rsc_entry *acquire_at(struct rsc_scope *s, bool pipe)
{
	struct rsc_entry *e;

	if (pipe)
		ck_assert_int_eq(rsc_pipe(s, 0, &e), 0);
	else
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e), 0);
	return e;
}

/*
 * DESIGN 7, rsc_adopt(3): an acquire whose owner the ledger cannot record
 * (no memory for its page) is not kept. Its descriptors are closed by the
 * runtime and the acquire fails with -ENOMEM (RSC_CTR_NOMEM_DROPS), so no
 * second adopt of the number can make two owners; once a page can be made,
 * the same acquire is kept, and a second adopt of it is refused. @target:
 * the first number of a ledger page no other test uses.
 */
static void unrecorded_acquire(int target, bool pipe)
{
	struct rlimit old, want;
	struct rsc_scope *s;
	struct rsc_entry *e;
	const char *ck_fork = getenv("CK_FORK");
	bool forked = !ck_fork || strcmp(ck_fork, "no");
	long long drops;
	int *dups, ret;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	if (t_under_valgrind() || old.rlim_max < (rlim_t)target + 64) {
		printf("SKIP %s acquire whose owner cannot be recorded: RLIMIT_NOFILE's hard limit is below %d (or valgrind)\n",
		       pipe ? "pipe" : "open", target + 64);
		return;
	}
	want = old;
	want.rlim_cur = (rlim_t)target + 64;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &want), 0);
	dups = occupy_below(target);
	ck_assert_ptr_nonnull(dups);
	drops = rsc_loop_counter(t_loop, RSC_CTR_NOMEM_DROPS);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "unrecorded", &s), 0);
	e = acquire_at(s, pipe);
	set_alloc_faults(t_loop, 1, true); /* the heap is out from the submit on */
	ret = rsc_entry_wait(e);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	/* Pages outlive loops: in one process (CK_FORK=no) an earlier test may
	 * have made this one, and then nothing is allocated here to fail. */
	if (ret == target && !forked) {
		printf("SKIP the drop of %s acquire whose owner cannot be recorded: page of %d made by an earlier test\n",
		       pipe ? "a pipe" : "an open", target);
		ck_assert_int_eq(rsc_adopt(s, target, 0, NULL), -EEXIST);
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
		goto out;
	}
	ck_assert_int_eq(ret, -ENOMEM);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_NOMEM_DROPS), drops + 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ENOMEM);
	run_dry(t_loop);
	ck_assert_int_eq(fcntl(target, F_GETFD), -1); /* closed by the runtime */
	ck_assert_int_eq(fcntl(target + 1, F_GETFD), -1);
	/* With memory: kept, in the ledger, so a second owner is refused. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "recorded", &s), 0);
	e = acquire_at(s, pipe);
	ck_assert_int_eq(rsc_entry_wait(e), target);
	ck_assert_int_eq(rsc_adopt(s, target, 0, NULL), -EEXIST);
	if (pipe)
		ck_assert_int_eq(rsc_adopt(s, target + 1, 0, NULL), -EEXIST);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
out:
	release_dups(dups);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
}

START_TEST(acquire_whose_owner_cannot_be_recorded_is_closed)
{
	unrecorded_acquire(3 * 4096, false);
}
END_TEST

START_TEST(pipe_whose_ends_cannot_be_recorded_is_closed)
{
	if (!t_kernel_has(OP_PIPE)) {
		printf("SKIP pipe_whose_ends_cannot_be_recorded_is_closed: kernel lacks IORING_OP_PIPE (Linux 6.16)\n");
		return;
	}
	unrecorded_acquire(4 * 4096, true);
}
END_TEST

struct accepted {
	int conns, enomem, other, last_res;
	struct rsc_scope *cs;
	struct rsc_entry *conn; /* the last connection */
};

static void on_accepted(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *conn,
			void *data)
{
	struct accepted *a = data;

	(void)l;
	a->last_res = res;
	if (res >= 0) {
		a->conns++;
		a->cs = cs;
		a->conn = conn;
	} else if (res == -ENOMEM) {
		ck_assert_ptr_null(cs);
		a->enomem++;
	} else {
		a->other++;
	}
}

/*
 * rsc_accept(3): a connection the runtime must close because there is no
 * memory for its scope or entry is heard as -ENOMEM (not -ECANCELED, not
 * silence), and counted (RSC_CTR_NOMEM_DROPS). Single-shot: that is its one
 * call. Multishot: a shortage, and the accept goes on to take the next one.
 */
static void accept_without_memory(bool multishot)
{
	struct accepted a = { 0 };
	struct sockaddr_in at;
	struct rsc_scope *s;
	struct rsc_entry *l;
	long long drops = rsc_loop_counter(t_loop, RSC_CTR_NOMEM_DROPS);
	int before = t_fd_count(), peer, peer2, calls;
	long deadline;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "server", &s), 0);
	l = t_listen_on_loopback(s, 8, &at);
	ck_assert_int_eq(rsc_accept(l, multishot ? RSC_ACCEPT_MULTISHOT : 0, on_accepted, &a), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0); /* armed */
	peer = t_connect(&at);
	set_alloc_faults(t_loop, 1, true);
	deadline = t_now_ms() + 5000;
	while (a.enomem + a.conns + a.other == 0 && t_now_ms() < deadline)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	ck_assert_int_eq(a.enomem, 1);
	ck_assert_int_eq(a.conns + a.other, 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_NOMEM_DROPS), drops + 1);
	calls = 1;
	if (multishot) {
		/* Still accepting: the next connection arrives in a scope of its own. */
		peer2 = t_connect(&at);
		while (a.conns == 0)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		ck_assert_int_eq(rsc_scope_close_wait(a.cs, NULL), 0);
		close(peer2);
		calls = 2;
	}
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	run_dry(t_loop);
	ck_assert_int_eq(a.enomem + a.conns + a.other, calls + (multishot ? 1 : 0));
	ck_assert_int_eq(a.conns, multishot ? 1 : 0);
	close(peer);
	ck_assert_int_eq(t_fd_count(), before);
}

START_TEST(accepted_connection_without_memory_is_heard_as_enomem)
{
	accept_without_memory(false);
}
END_TEST

START_TEST(multishot_accept_without_memory_hears_enomem_and_goes_on)
{
	accept_without_memory(true);
}
END_TEST

/*
 * rsc_inbox(3): a slot handed over when the receiver has no memory for its
 * scope or entry is closed by the receiving runtime, counted
 * (RSC_CTR_NOMEM_DROPS), and the inbox's callback hears -ENOMEM; the inbox
 * stays open and takes the next one.
 */
START_TEST(hand_over_arrival_without_memory_is_heard_as_enomem)
{
	struct accepted a = { 0 };
	struct rsc_loop *rl;
	struct rsc_scope *rs, *s;
	struct rsc_entry *inbox, *e;
	unsigned long long addr;
	int i, sent;

	ck_assert_int_eq(rsc_loop_new(&rl, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(rl, NULL, "receiver", &rs), 0);
	ck_assert_int_eq(rsc_inbox(rs, on_accepted, &a, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sender", &s), 0);
	for (sent = 0; sent < 2; sent++) {
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e), 0);
		ck_assert_int_ge(rsc_entry_wait(e), 0);
		for (i = 0; i < 4; i++)
			ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
		if (sent == 0)
			set_alloc_faults(rl, 1, true);
		ck_assert_int_eq(rsc_entry_hand_over(e, addr, NULL, NULL), 0);
		for (i = 0; i < 4; i++)
			ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
		ck_assert_int_eq(rsc_fault_set(rl, NULL), 0);
		if (sent == 0) {
			ck_assert_int_eq(a.enomem, 1);
			ck_assert_int_eq(a.conns, 0);
			ck_assert_int_eq(rsc_loop_counter(rl, RSC_CTR_NOMEM_DROPS), 1);
		}
	}
	ck_assert_int_eq(a.conns, 1);
	ck_assert_int_eq(a.other, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(rs, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(rl), 0);
	ck_assert_int_eq(t_audit_slots(rl), 0);
	ck_assert_int_eq(rsc_loop_close(rl), 0);
}
END_TEST

/* Connections that warm the pools, then those that must allocate nothing. */
#define WARM_ACCEPTS 4
#define STEADY_ACCEPTS 32

/* A loop's counters when its steady state began. */
struct steady_mark {
	long long pool_allocs, faults;
};

/* From here on @loop allocates nothing: its first allocation would fail, and count. */
static void steady_begin(struct rsc_loop *loop, struct steady_mark *m)
{
	m->pool_allocs = rsc_loop_counter(loop, RSC_CTR_POOL_ALLOCS);
	m->faults = rsc_loop_counter(loop, RSC_CTR_FAULTS_INJECTED);
	ck_assert_int_eq(rsc_fault_set(loop, "alloc:1:ENOMEM"), 0);
}

/* No rule fired and no pool grew since steady_begin(); the rule is cleared. */
static void steady_end(struct rsc_loop *loop, const struct steady_mark *m)
{
	ck_assert_int_eq(rsc_fault_set(loop, NULL), 0);
	ck_assert_int_eq(rsc_loop_counter(loop, RSC_CTR_FAULTS_INJECTED), m->faults);
	ck_assert_int_eq(rsc_loop_counter(loop, RSC_CTR_POOL_ALLOCS), m->pool_allocs);
}

static void hand_over_done(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

struct arrival {
	int n, other;
	struct rsc_scope *cs;
	struct rsc_entry *conn;
};

static void on_arrival(struct rsc_entry *inbox, int res, struct rsc_scope *cs, struct rsc_entry *conn,
		       void *data)
{
	struct arrival *a = data;

	(void)inbox;
	if (res < 0) {
		a->other++;
		return;
	}
	a->n++;
	a->cs = cs;
	a->conn = conn;
}

/*
 * rsc_entry_hand_over(3) of accepted connections, the client's address
 * travelling with each (rsc_entry_peername(3) on the receiver): once a few
 * have warmed the pools, on both loops and in the library's spare parcels,
 * a connection accepted, handed over and closed allocates nothing.
 */
START_TEST(steady_hand_overs_allocate_nothing)
{
	struct accepted a = { 0 };
	struct arrival got = { 0 };
	struct sockaddr_in at;
	struct rsc_loop *rl;
	struct rsc_scope *rs, *s;
	struct rsc_entry *inbox, *l;
	unsigned long long addr;
	struct steady_mark sender, receiver;
	int i, before = t_fd_count();

	ck_assert_int_eq(rsc_loop_new(&rl, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(rl, NULL, "receiver", &rs), 0);
	ck_assert_int_eq(rsc_inbox(rs, on_arrival, &got, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "acceptor", &s), 0);
	l = t_listen_on_loopback(s, 8, &at);
	for (i = 0; i < WARM_ACCEPTS + STEADY_ACCEPTS; i++) {
		struct sockaddr_storage peer, client_addr;
		socklen_t len = sizeof(peer), clen = sizeof(client_addr);
		long deadline = t_now_ms() + 5000;
		int client, sent = 1000;

		if (i == WARM_ACCEPTS) {
			steady_begin(t_loop, &sender);
			steady_begin(rl, &receiver);
		}
		ck_assert_int_eq(rsc_accept(l, RSC_DIRECT, on_accepted, &a), 0);
		client = t_connect(&at);
		while (a.conns == i) {
			ck_assert_msg(t_now_ms() < deadline, "no connection in 5 s");
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		}
		ck_assert_int_eq(a.enomem + a.other, 0);
		ck_assert_int_eq(rsc_entry_hand_over(a.conn, addr, hand_over_done, &sent), 0);
		while (sent == 1000 || got.n == i) {
			ck_assert_msg(t_now_ms() < deadline, "no hand-over in 5 s");
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
			ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
		}
		ck_assert_int_ge(sent, 0);
		ck_assert_int_eq(got.other, 0);
		/* The client's own address, as the acceptor's kernel gave it. */
		ck_assert_int_eq(getsockname(client, (struct sockaddr *)&client_addr, &clen), 0);
		ck_assert_int_eq(rsc_entry_peername(got.conn, (struct sockaddr *)&peer, &len), 0);
		ck_assert_int_eq(len, clen);
		ck_assert_mem_eq(&peer, &client_addr, clen);
		ck_assert_int_eq(rsc_scope_close_wait(got.cs, NULL), 0);
		ck_assert_int_eq(rsc_scope_close_wait(a.cs, NULL), 0);
		close(client);
	}
	steady_end(t_loop, &sender);
	steady_end(rl, &receiver);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(rs, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(rl), 0);
	ck_assert_int_eq(rsc_loop_close(rl), 0);
	run_dry(t_loop);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * Free lists keep an acquire and its release free of malloc in steady state
 * (RSC_CTR_POOL_ALLOCS counts what they make): accepts too, the address
 * room a single-shot direct accept keeps for rsc_entry_peername(3)
 * included. Once a few connections have warmed the pools, each further one
 * (accepted, its scope closed, its client gone) makes no heap allocation at
 * all: an alloc rule on the first would fire (RSC_CTR_FAULTS_INJECTED).
 */

static const unsigned steady_accept_flags[] = {
	0, RSC_DIRECT, RSC_ACCEPT_MULTISHOT, RSC_ACCEPT_MULTISHOT | RSC_DIRECT,
};

/* One connection accepted (arming a single-shot accept first), then closed. */
static void accept_one(struct rsc_entry *l, unsigned flags, const struct sockaddr_in *at,
		       struct accepted *a)
{
	int want = a->conns + 1, client;
	long deadline = t_now_ms() + 5000;

	if (!(flags & RSC_ACCEPT_MULTISHOT) || a->conns == 0)
		ck_assert_int_eq(rsc_accept(l, flags, on_accepted, a), 0);
	client = t_connect(at);
	while (a->conns < want && a->enomem + a->other == 0) {
		ck_assert_msg(t_now_ms() < deadline, "no connection in 5 s");
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	}
	ck_assert_int_eq(a->enomem + a->other, 0);
	ck_assert_int_eq(rsc_scope_close_wait(a->cs, NULL), 0);
	close(client);
}

START_TEST(steady_accepts_allocate_nothing)
{
	unsigned flags = steady_accept_flags[_i];
	struct accepted a = { 0 };
	struct sockaddr_in at;
	struct rsc_scope *s;
	struct rsc_entry *l;
	struct steady_mark mark;
	int i, before = t_fd_count();

	if ((flags & RSC_ACCEPT_MULTISHOT) && !t_kernel_has(IORING_OP_SOCKET)) {
		printf("SKIP steady_accepts_allocate_nothing (multishot): kernel lacks IORING_ACCEPT_MULTISHOT (5.19)\n");
		return;
	}
	if (flags & RSC_DIRECT)
		t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "server", &s), 0);
	l = t_listen_on_loopback(s, 8, &at);
	for (i = 0; i < WARM_ACCEPTS + STEADY_ACCEPTS; i++) {
		if (i == WARM_ACCEPTS)
			steady_begin(t_loop, &mark);
		accept_one(l, flags, &at, &a);
	}
	steady_end(t_loop, &mark);
	ck_assert_int_eq(a.conns, WARM_ACCEPTS + STEADY_ACCEPTS);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	run_dry(t_loop);
	/* A multishot accept's last call: the close ended it. */
	ck_assert_int_eq(a.other, (flags & RSC_ACCEPT_MULTISHOT) ? 1 : 0);
	if (flags & RSC_DIRECT)
		ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

static void install_heard(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

/*
 * rsc_entry_install(3) once per connection, as a server that hands its
 * direct slots to code wanting a process descriptor: after a few warm the
 * pools, a slot opened, installed and released makes no heap allocation
 * (the move's record is pooled; an alloc rule on the first would fire).
 */
START_TEST(steady_installs_allocate_nothing)
{
	struct steady_mark mark;
	int i, before = t_fd_count();

	t_direct_table(16, 4);
	t_make_files(1);
	for (i = 0; i < WARM_ACCEPTS + STEADY_ACCEPTS; i++) {
		struct rsc_scope *s;
		struct rsc_entry *e;
		int fd = -1000;

		if (i == WARM_ACCEPTS)
			steady_begin(t_loop, &mark);
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
		ck_assert_int_ge(rsc_entry_wait(e), 0);
		ck_assert_int_eq(rsc_entry_install(e, 0, install_heard, &fd), 0);
		while (fd == -1000)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		ck_assert_msg(fd >= 0, "install %d: %s", i, rsc_strerror(fd));
		ck_assert_int_eq(rsc_entry_fd(e), fd);
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	}
	steady_end(t_loop, &mark);
	run_dry(t_loop);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* A scope whose unwind leaves two descriptors open (a pipe made by hand inside it). */
static bool leaky_scope(struct rsc_loop *loop, int fds[2])
{
	struct rsc_scope *s;
	int ret = rsc_scope_open(loop, NULL, "leaky", &s);

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	if (ret < 0) {
		ck_assert_int_eq(ret, -ENOMEM); /* no scope, nothing to audit */
		return false;
	}
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	return true;
}

/*
 * ringscope_audit(7): a finding, or a scope's leak verdict, that memory
 * cannot hold is never lost silently: RSC_CTR_AUDIT_LOST counts it. With
 * each allocation of a leaky scope's life failing in turn, the two leaks
 * are found or counted lost, every time.
 */
START_TEST(audit_finding_without_memory_is_counted_lost)
{
	int nth, seen_lost = 0;

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	for (nth = 1; nth <= 12; nth++) {
		long long lost = rsc_loop_counter(t_loop, RSC_CTR_AUDIT_LOST);
		int fds[2], found;
		bool opened;

		rsc_audit_clear(t_loop);
		set_alloc_faults(t_loop, nth, false);
		opened = leaky_scope(t_loop, fds);
		ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
		run_dry(t_loop);
		if (!opened) {
			close(fds[0]);
			close(fds[1]);
			continue;
		}
		found = rsc_audit_count(t_loop);
		lost = rsc_loop_counter(t_loop, RSC_CTR_AUDIT_LOST) - lost;
		/* Two leaks: both found, or fewer and the loss counted. */
		ck_assert_msg(found == 2 || (found < 2 && lost > 0),
			      "allocation %d failing: %d findings, %lld lost", nth, found, lost);
		seen_lost += lost > 0;
		close(fds[0]);
		close(fds[1]);
	}
	ck_assert_int_gt(seen_lost, 0);
	rsc_audit_clear(t_loop);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_OFF), 0);
}
END_TEST

Suite *make_alloc_faults_suite(void)
{
	Suite *s = suite_create("alloc_faults");
	TCase *tc = tcase_create("alloc_faults");

	if (!t_has_fault_injection()) {
		printf("SKIP alloc_faults: this build has no fault injection\n");
		suite_add_tcase(s, tc);
		return s;
	}
	t_add_fixture(tc);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, alloc_rule_takes_enomem_only);
	tcase_add_test(tc, acquire_whose_owner_cannot_be_recorded_is_closed);
	tcase_add_test(tc, pipe_whose_ends_cannot_be_recorded_is_closed);
	t_add_socket_test(tc, accepted_connection_without_memory_is_heard_as_enomem);
	t_add_test_if(tc, multishot_accept_without_memory_hears_enomem_and_goes_on,
		      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	tcase_add_test(tc, audit_finding_without_memory_is_counted_lost);
	/* The listener's socket is IORING_OP_SOCKET's; the table's last two flags are multishot. */
	if (!t_kernel_has(IORING_OP_SOCKET))
		printf("SKIP steady_accepts_allocate_nothing: the loops of this run lack IORING_OP_SOCKET (Linux 5.19)\n");
	else if (!t_has_accept_multishot())
		printf("SKIP steady_accepts_allocate_nothing (multishot, multishot direct): the loops of this run lack IORING_ACCEPT_MULTISHOT (Linux 5.19)\n");
	if (t_kernel_has(IORING_OP_SOCKET))
		tcase_add_loop_test(tc, steady_accepts_allocate_nothing, 0,
				    t_has_accept_multishot() ? (int)(sizeof(steady_accept_flags) /
								     sizeof(steady_accept_flags[0])) :
							       2);
	if (t_kernel_has(OP_FIXED_FD_INSTALL))
		tcase_add_test(tc, steady_installs_allocate_nothing);
	else
		printf("SKIP steady_installs_allocate_nothing: kernel lacks IORING_OP_FIXED_FD_INSTALL (Linux 6.8)\n");
	if (t_has_hand_over()) {
		tcase_add_test(tc, hand_over_arrival_without_memory_is_heard_as_enomem);
		t_add_socket_test(tc, steady_hand_overs_allocate_nothing);
	} else {
		printf("SKIP hand_over_arrival_without_memory_is_heard_as_enomem, steady_hand_overs_allocate_nothing: the loops of this run lack IORING_MSG_SEND_FD (Linux 6.0)\n");
	}
	tcase_add_test(tc, refused_trace_file_leaves_the_file_alone);
	tcase_add_test(tc, refused_recv_buffers_keep_the_old_ones);
	tcase_add_test(tc, adopt_refused_while_the_close_waits_even_without_memory);
	tcase_add_test(tc, close_cancels_io_when_the_op_pool_cannot_grow);
	tcase_add_test(tc, cancel_without_memory_is_retried_with_nothing_completing);
	tcase_add_test(tc, timer_that_cannot_start_for_memory_hears_enomem);
	tcase_add_test(tc, refused_listen_acquires_nothing);
	t_add_test_if(tc, orphan_slot_without_memory_is_still_emptied, t_has_accept_multishot(),
		      "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	tcase_add_test(tc, shutdown_without_memory_releases_everything);
	tcase_add_loop_test(tc, loop_new_each_allocation_fails_cleanly, 0, 3);
	tcase_add_test(tc, loop_on_the_applications_ring_each_allocation_fails_cleanly);
	tcase_add_loop_test(tc, each_allocation_failing_once_fails_cleanly, 0, N_CASES);
	tcase_add_loop_test(tc, each_allocation_failing_in_a_burst_fails_cleanly, 0, N_CASES);
	tcase_add_loop_test(tc, each_allocation_failing_with_the_op_pool_used_up_fails_cleanly, 0,
			    N_CASES);
	tcase_add_loop_test(tc, each_case_in_steady_state_allocates_nothing, 0, N_CASES);
	suite_add_tcase(s, tc);
	return s;
}
