/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* An error node is immutable once made; chains share tails by refcount. */
struct rsc_error {
	unsigned refs;
	int err;
	char *op;
	struct rsc_error *cause;
	char *entry;
	char *detail;
	char *scope;
	char strings[]; /* op, entry, detail and scope, NUL-separated */
};

static _Thread_local char last_error[256];

/*
 * One immortal node per errno, for an error raised when the heap cannot
 * grow and no chain holds an earlier one: the errno is kept (names are
 * lost), so a failing unwind never reports success. Made once, on first
 * need; never counted, never freed.
 */
#define FALLBACK_ERRNOS 4096 /* the kernel's MAX_ERRNO + 1 */
static struct rsc_error fallback[FALLBACK_ERRNOS];
static pthread_once_t fallback_once = PTHREAD_ONCE_INIT;

static bool is_fallback(const struct rsc_error *e)
{
	return e >= fallback && e < fallback + FALLBACK_ERRNOS;
}

static void fallback_init(void)
{
	int i;

	for (i = 1; i < FALLBACK_ERRNOS; i++) {
		fallback[i].err = -i;
		fallback[i].op = fallback[i].entry = fallback[i].detail = fallback[i].scope = "";
	}
}

struct rsc_error *rsc__error_fallback(int err)
{
	int e = err < 0 ? -err : err;

	if (e <= 0 || e >= FALLBACK_ERRNOS)
		return NULL; /* not an errno: nothing to stand for it */
	pthread_once(&fallback_once, fallback_init);
	return &fallback[e];
}

static size_t put_text(char *buf, size_t len, size_t used, const char *str);

void rsc__set_last_error(const char *fmt, ...)
{
	char raw[sizeof(last_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	/* A sentence to print: a path or a variable's value in it must not drive a terminal. */
	put_text(last_error, sizeof(last_error), 0, raw);
}

const char *rsc_last_error(void)
{
	return last_error;
}

const char *rsc_strerror(int err)
{
	const char *s;

	if (err == 0)
		return "Success";
	if (err == INT_MIN)	/* -INT_MIN is undefined; no errno is that large */
		return "Unknown error";
	/* strerrordesc_np (glibc 2.32) is thread-safe and never formats. */
	s = strerrordesc_np(err < 0 ? -err : err);
	return s ? s : "Unknown error";
}

const char *rsc_err_name(int err)
{
	const char *s;

	if (err == 0)
		return "OK";
	if (err == INT_MIN)	/* -INT_MIN is undefined; no errno is that large */
		return "E?";
	s = strerrorname_np(err < 0 ? -err : err);
	return s ? s : "E?";
}

/*
 * Every opcode a manager's hook may prepare is named (rsc_error_op(3)): the
 * kernel's own names (io_uring/opdef.c), numbered as in the kernel's uapi
 * header beyond liburing 2.3's enum.
 */
static const char *const opcode_names[] = {
	[IORING_OP_NOP] = "nop",
	[IORING_OP_READV] = "readv",
	[IORING_OP_WRITEV] = "writev",
	[IORING_OP_FSYNC] = "fsync",
	[IORING_OP_READ_FIXED] = "read_fixed",
	[IORING_OP_WRITE_FIXED] = "write_fixed",
	[IORING_OP_POLL_ADD] = "poll_add",
	[IORING_OP_POLL_REMOVE] = "poll_remove",
	[IORING_OP_SYNC_FILE_RANGE] = "sync_file_range",
	[IORING_OP_SENDMSG] = "sendmsg",
	[IORING_OP_RECVMSG] = "recvmsg",
	[IORING_OP_TIMEOUT] = "timeout",
	[IORING_OP_TIMEOUT_REMOVE] = "timeout_remove",
	[IORING_OP_ACCEPT] = "accept",
	[IORING_OP_ASYNC_CANCEL] = "async_cancel",
	[IORING_OP_LINK_TIMEOUT] = "link_timeout",
	[IORING_OP_CONNECT] = "connect",
	[IORING_OP_FALLOCATE] = "fallocate",
	[IORING_OP_OPENAT] = "openat",
	[IORING_OP_CLOSE] = "close",
	[IORING_OP_FILES_UPDATE] = "files_update",
	[IORING_OP_STATX] = "statx",
	[IORING_OP_READ] = "read",
	[IORING_OP_WRITE] = "write",
	[IORING_OP_FADVISE] = "fadvise",
	[IORING_OP_MADVISE] = "madvise",
	[IORING_OP_SEND] = "send",
	[IORING_OP_RECV] = "recv",
	[IORING_OP_OPENAT2] = "openat2",
	[IORING_OP_EPOLL_CTL] = "epoll_ctl",
	[IORING_OP_SPLICE] = "splice",
	[IORING_OP_PROVIDE_BUFFERS] = "provide_buffers",
	[IORING_OP_REMOVE_BUFFERS] = "remove_buffers",
	[IORING_OP_TEE] = "tee",
	[IORING_OP_SHUTDOWN] = "shutdown",
	[IORING_OP_RENAMEAT] = "renameat",
	[IORING_OP_UNLINKAT] = "unlinkat",
	[IORING_OP_MKDIRAT] = "mkdirat",
	[IORING_OP_SYMLINKAT] = "symlinkat",
	[IORING_OP_LINKAT] = "linkat",
	[IORING_OP_MSG_RING] = "msg_ring",
	[IORING_OP_FSETXATTR] = "fsetxattr",
	[IORING_OP_SETXATTR] = "setxattr",
	[IORING_OP_FGETXATTR] = "fgetxattr",
	[IORING_OP_GETXATTR] = "getxattr",
	[IORING_OP_SOCKET] = "socket",
	[IORING_OP_URING_CMD] = "uring_cmd",
	[IORING_OP_SEND_ZC] = "send_zc",
	[IORING_OP_SENDMSG_ZC] = "sendmsg_zc",
	[49] = "read_multishot", /* Linux 6.7 */
	[50] = "waitid",
	[51] = "futex_wait",
	[52] = "futex_wake",
	[53] = "futex_waitv",
	[RSC__OP_FIXED_FD_INSTALL] = "fixed_fd_install",
	[55] = "ftruncate", /* Linux 6.9 */
	[RSC__OP_BIND] = "bind",
	[RSC__OP_LISTEN] = "listen",
	[58] = "recv_zc", /* Linux 6.15 */
	[59] = "epoll_wait",
	[60] = "readv_fixed",
	[61] = "writev_fixed",
	[RSC__OP_PIPE] = "pipe",
};

const char *rsc__opcode_name(unsigned opcode)
{
	if (opcode == RSC__OPCODE_HOOK)
		return "exit";
	if (opcode < sizeof(opcode_names) / sizeof(opcode_names[0]) &&
	    opcode_names[opcode])
		return opcode_names[opcode];
	return "io_uring op";
}

int rsc__opcode_by_name(const char *name, size_t len)
{
	unsigned op;

	for (op = 0; op < sizeof(opcode_names) / sizeof(opcode_names[0]); op++)
		if (opcode_names[op] && strlen(opcode_names[op]) == len &&
		    !strncmp(opcode_names[op], name, len))
			return (int)op;
	return -1;
}

struct rsc_error *rsc__error_new(struct rsc_loop *loop, int err, const char *op, const char *entry,
				 const char *detail, const char *scope,
				 struct rsc_error *cause)
{
	size_t lo, le, ld, ls;
	struct rsc_error *e;

	op = op ? op : "";
	entry = entry ? entry : "";
	detail = detail ? detail : "";
	scope = scope ? scope : "";
	lo = strlen(op) + 1; /* copied: rsc_scope_fail's op is the caller's */
	le = strlen(entry) + 1;
	ld = strlen(detail) + 1;
	ls = strlen(scope) + 1;
	e = rsc__malloc(loop, sizeof(*e) + lo + le + ld + ls);
	if (!e)
		return NULL; /* the caller keeps the previous pending error */
	e->refs = 1;
	e->err = err < 0 ? err : -err;
	e->cause = cause ? rsc__error_ref(cause) : NULL;
	e->op = memcpy(e->strings, op, lo);
	e->entry = memcpy(e->strings + lo, entry, le);
	e->detail = memcpy(e->strings + lo + le, detail, ld);
	e->scope = memcpy(e->strings + lo + le + ld, scope, ls);
	return e;
}

struct rsc_error *rsc__error_append(struct rsc_loop *loop, struct rsc_error *head,
				    struct rsc_error *tail)
{
	return rsc__error_splice(loop, head, NULL, tail);
}

/*
 * rsc__error_append() for a @head the caller gives up (its reference is
 * taken). A chain nobody else holds, node by node, is continued in place: a
 * failure at every level of a deep tree would otherwise copy the whole chain
 * below at each level, quadratic in time and, until the tree is freed, in
 * memory. Anyone else's hold (a duplicate, a shared tail) keeps it immutable:
 * then it is copied.
 */
struct rsc_error *rsc__error_append_owned(struct rsc_loop *loop, struct rsc_error *head,
					  struct rsc_error *tail)
{
	struct rsc_error *last, *copy;

	if (!head || !tail)
		return head ? head : rsc__error_ref(tail);
	for (last = head; !is_fallback(last) &&
			  __atomic_load_n(&last->refs, __ATOMIC_ACQUIRE) == 1; last = last->cause)
		if (!last->cause) {
			last->cause = rsc__error_ref(tail);
			return head;
		}
	copy = rsc__error_splice(loop, head, NULL, tail);
	rsc__error_unref(head);
	return copy;
}

struct rsc_error *rsc__error_ref(struct rsc_error *err)
{
	/* Atomic: a duplicated chain may be freed on another thread. */
	if (err && !is_fallback(err))
		__atomic_add_fetch(&err->refs, 1, __ATOMIC_RELAXED);
	return err;
}

RSC__HOT void rsc__error_unref(struct rsc_error *err)
{
	while (err && !is_fallback(err) && __atomic_sub_fetch(&err->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		struct rsc_error *cause = err->cause;

		free(err);
		err = cause;
	}
}

/* Errors a splice leaves out (the copies made, the rest of @head down to
 * @stop), but the one a fallback keeps by its errno: counted, never silent. */
static void count_lost(struct rsc_loop *loop, const struct rsc_error *made,
		       const struct rsc_error *head, const struct rsc_error *stop,
		       bool one_kept)
{
	unsigned long long n = 0;

	for (; made; made = made->cause)
		n++;
	for (; head && head != stop; head = head->cause)
		n++;
	if (one_kept && n)
		n--;
	if (loop)
		loop->counters[RSC_CTR_ERRORS_LOST] += (long long)n;
}

/*
 * A copy of @head's chain down to @stop (exclusive), continued by @tail.
 * append (stop NULL): a child that failed on its own, unwound by a parent
 * with its own error. With a stop: errors raised on a parent while its child
 * unwound from the parent's pending error @stop, kept over the child's result.
 */
struct rsc_error *rsc__error_splice(struct rsc_loop *loop, struct rsc_error *head,
				    const struct rsc_error *stop,
				    struct rsc_error *tail)
{
	struct rsc_error *first = NULL, **link = &first, *copy;

	if (!tail && !stop)
		return rsc__error_ref(head);
	/*
	 * A loop, not recursion: a chain may be a million links long. Copies are
	 * made top down and linked while still private to us. Where a copy
	 * cannot be made, the chain cannot grow: @tail, the older errors, stays
	 * (the first error is never the one lost), or without one @head's
	 * errno.
	 */
	for (; head && head != stop; head = head->cause) {
		copy = rsc__error_new(loop, head->err, head->op, head->entry, head->detail,
				      head->scope, NULL);
		if (!copy) {
			*link = NULL;
			count_lost(loop, first, head, stop, !tail);
			rsc__error_unref(first);
			return tail ? rsc__error_ref(tail) : rsc__error_fallback(head->err);
		}
		*link = copy;
		link = &copy->cause;
	}
	*link = rsc__error_ref(tail);
	return first;
}

int rsc_error_errno(const struct rsc_error *err)
{
	RSC__CHECK_ARG(err, "rsc_error_errno: err is NULL");
	return err->err;
}

const char *rsc_error_op(const struct rsc_error *err)
{
	return err ? err->op : "";
}

const char *rsc_error_entry(const struct rsc_error *err)
{
	return err ? err->entry : "";
}

const char *rsc_error_detail(const struct rsc_error *err)
{
	return err ? err->detail : "";
}

const char *rsc_error_scope(const struct rsc_error *err)
{
	return err ? err->scope : "";
}

const struct rsc_error *rsc_error_cause(const struct rsc_error *err)
{
	return err ? err->cause : NULL;
}

int rsc_error_depth(const struct rsc_error *err)
{
	int n = 0;

	RSC__CHECK_ARG(err, "rsc_error_depth: err is NULL");
	for (; err; err = err->cause)
		n++;
	return n;
}

/*
 * Bytes at @s shown as they are: printable ASCII but the backslash, or one
 * valid UTF-8 character but a C1 control (c2 80-c2 9f: U+009B is CSI to a
 * UTF-8 terminal, as a lone 0x9b is to an 8-bit one). 0: show one byte
 * escaped (next_shown).
 */
/* Printable ASCII but the backslash: a byte shown as it is, alone. */
static bool plain_ascii(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '\\';
}

static size_t shown_len(const unsigned char *s)
{
	size_t n;

	if (*s >= 0x20 && *s < 0x7f)
		return plain_ascii(*s);
	if (*s < 0x80 || !(n = rsc__utf8_len(s)))
		return 0;
	return s[0] == 0xc2 && s[1] < 0xa0 ? 0 : n;
}

/*
 * The bytes *@s starts with as they are shown, *@s moved past them: the
 * bytes themselves, or one byte's escape written in @esc (a backslash
 * doubled, so that a name holding the text "\\x1b" never reads as one).
 */
static const char *next_shown(const unsigned char **s, char esc[5], size_t *n)
{
	const unsigned char *p = *s;

	if ((*n = shown_len(p))) {
		*s = p + *n;
		return (const char *)p;
	}
	if (*p == '\\')
		memcpy(esc, "\\\\", 3);
	else
		snprintf(esc, 5, "\\x%02x", *p);
	*s = p + 1;
	*n = strlen(esc);
	return esc;
}

/*
 * Names and paths come from the caller and the file system: a file name may
 * hold a newline or an escape sequence. The accessors return the bytes as
 * they are; the text made for a terminal or a log shows each byte that could
 * drive it as \xNN (a backslash as \\), so one error is one line and
 * nothing is sent to the terminal. A character that does not fit is left out whole.
 */
static size_t put_text(char *buf, size_t len, size_t used, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	char esc[5];
	size_t n;

	while (*s) {
		const unsigned char *run = s;
		const char *piece;

		/* Plain ASCII is most of every message: copied as a run, it is cut byte by byte. */
		while (plain_ascii(*s))
			s++;
		if (s > run) {
			n = (size_t)(s - run);
			if (used + 1 < len) {
				size_t fit = n < len - 1 - used ? n : len - 1 - used;

				memcpy(buf + used, run, fit);
				if (fit < n)
					buf[used + fit] = '\0';
			}
			used += n;
			continue;
		}
		piece = next_shown(&s, esc, &n);
		if (used + n < len)
			memcpy(buf + used, piece, n);
		else if (used < len)
			buf[used] = '\0'; /* it ends before the cut character or escape */
		used += n;
	}
	if (len)
		buf[used < len ? used : len - 1] = '\0';
	return used;
}

int rsc__fput_text(const char *str, FILE *out)
{
	const unsigned char *s = (const unsigned char *)str;
	char esc[5];
	size_t n;

	while (*s) {
		const char *piece = next_shown(&s, esc, &n);

		if (fwrite(piece, 1, n, out) != n)
			return -EIO;
	}
	return 0;
}

static size_t put_error(char *buf, size_t len, size_t used,
			const struct rsc_error *err, bool first)
{
	used = put_text(buf, len, used, first ? "" : "; caused by ");
	used = put_text(buf, len, used, err->op);
	used = put_text(buf, len, used, err->detail[0] ? " " : "");
	used = put_text(buf, len, used, err->detail);
	used = put_text(buf, len, used, ": ");
	used = put_text(buf, len, used, rsc_strerror(err->err));
	used = put_text(buf, len, used, " (");
	used = put_text(buf, len, used, rsc_err_name(err->err));
	used = put_text(buf, len, used, ") [entry '");
	used = put_text(buf, len, used, err->entry);
	used = put_text(buf, len, used, "' in scope '");
	used = put_text(buf, len, used, err->scope);
	return put_text(buf, len, used, "']");
}

/* The chain's text into @buf; @whole: measure it all, else stop once @buf is full. */
static size_t format_chain(const struct rsc_error *err, char *buf, size_t len, bool whole)
{
	size_t used = 0;

	if (len)
		buf[0] = '\0';
	for (; err && (whole || used < len); err = err->cause) {
		used = put_error(buf, len, used, err, used == 0);
		if (used > INT32_MAX)
			return used;
	}
	return used;
}

int rsc_error_format(const struct rsc_error *err, char *buf, size_t len)
{
	size_t used;

	RSC__CHECK_ARG(err, "rsc_error_format: err is NULL");
	RSC__CHECK_ARG(buf || !len, "rsc_error_format: buf is NULL but len is %zu (0 to measure)", len);
	used = format_chain(err, buf, len, true);
	return used > INT32_MAX ? -EOVERFLOW : (int)used;
}

/*
 * The first @len - 1 bytes of the text only: the trace writes them for each
 * release of an unwind, and walking a chain of 100,000 links to its end each
 * time made a traced unwind quadratic.
 */
void rsc__error_format_head(const struct rsc_error *err, char *buf, size_t len)
{
	(void)format_chain(err, buf, len, false);
}

int rsc_error_print(const struct rsc_error *err, FILE *out)
{
	int depth = 0;

	int ret = 0;

	RSC__CHECK_ARG(err && out, "rsc_error_print: %s is NULL", err ? "out" : "err");
	/* The chain is written in pieces: another thread's text on @out (two
	 * loops failing at once on stderr, unbuffered) must wait, not cut a line. */
	flockfile(out);
	for (; err; err = err->cause, depth++) {
		if (fputs(depth ? "  caused by: " : "error: ", out) == EOF ||
		    rsc__fput_text(err->op, out) < 0 ||
		    fputs(err->detail[0] ? " " : "", out) == EOF ||
		    rsc__fput_text(err->detail, out) < 0 ||
		    fprintf(out, ": %s (%s) [entry '", rsc_strerror(err->err),
			    rsc_err_name(err->err)) < 0 ||
		    rsc__fput_text(err->entry, out) < 0 ||
		    fputs("' in scope '", out) == EOF ||
		    rsc__fput_text(err->scope, out) < 0 || fputs("']\n", out) == EOF) {
			ret = -EIO;
			break;
		}
	}
	ret = rsc__print_done(out, ret, "rsc_error_print");
	funlockfile(out);
	return ret;
}

int rsc__print_done(FILE *out, int ret, const char *fn)
{
	if (ret == 0 && (fflush(out) == EOF || ferror(out)))
		ret = -EIO;
	if (ret < 0)
		rsc__set_last_error("%s: cannot write: %s", fn,
				    errno ? rsc_strerror(errno) : "the stream has an error");
	return ret;
}

int rsc_error_dup(const struct rsc_error *err, struct rsc_error **dupp)
{
	if (dupp)
		*dupp = NULL; /* as every output of a failed call */
	RSC__CHECK_ARG(err && dupp, "rsc_error_dup: %s is NULL", err ? "dupp" : "err");
	/* Nodes are immutable, so a new reference is a faithful copy. */
	*dupp = rsc__error_ref((struct rsc_error *)err);
	return 0;
}

void rsc_error_free(struct rsc_error *err)
{
	rsc__error_unref(err);
}
