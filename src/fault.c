/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifdef RSC_FAULT_INJECTION
static const char *const kind_names[RSC__F__COUNT] = {
	[RSC__F_OPENAT] = "openat",	  [RSC__F_SOCKET] = "socket",
	[RSC__F_ACCEPT] = "accept",	  [RSC__F_CONNECT] = "connect",
	[RSC__F_CLOSE] = "close",	  [RSC__F_FSYNC] = "fsync",
	[RSC__F_CANCEL] = "cancel",	  [RSC__F_SQ_FULL] = "sq_full",
	[RSC__F_SUBMIT] = "submit",	  [RSC__F_WAIT] = "wait",
	[RSC__F_CQ_OVERFLOW] = "cq_overflow",	  [RSC__F_MSG_RING] = "msg_ring",
	[RSC__F_ALLOC] = "alloc",
};

static const char *const missing_names[RSC__MISSING__COUNT] = {
	[RSC__MISSING_PROBE] = "probe",
	[RSC__MISSING_SINGLE_ISSUER] = "single_issuer",
	[RSC__MISSING_DEFER_TASKRUN] = "defer_taskrun",
	[RSC__MISSING_COOP_TASKRUN] = "coop_taskrun",
	[RSC__MISSING_SUBMIT_ALL] = "submit_all",
	[RSC__MISSING_REGISTER_RING] = "register_ring",
	[RSC__MISSING_CANCEL_FD] = "cancel_fd",
	[RSC__MISSING_RECV_MULTISHOT] = "recv_multishot",
	[RSC__MISSING_POLL_MULTISHOT] = "poll_multishot",
	[RSC__MISSING_MSG_SEND_FD] = "msg_send_fd",
	[RSC__MISSING_ACCEPT_MULTISHOT] = "accept_multishot",
};
#endif

int rsc__fault_kind_of_opcode(unsigned opcode)
{
	switch (opcode) {
	case IORING_OP_OPENAT:
	case IORING_OP_OPENAT2:
		return RSC__F_OPENAT;
	case IORING_OP_SOCKET:
		return RSC__F_SOCKET;
	case IORING_OP_ACCEPT:
		return RSC__F_ACCEPT;
	case IORING_OP_CONNECT:
		return RSC__F_CONNECT;
	case IORING_OP_CLOSE:
		return RSC__F_CLOSE;
	case IORING_OP_FSYNC:
		return RSC__F_FSYNC;
	case IORING_OP_ASYNC_CANCEL:
		return RSC__F_CANCEL;
	default:
		return -1;
	}
}

#ifdef RSC_FAULT_INJECTION
int rsc__fault_state_hit(struct rsc_fault_state *f, enum rsc__fault_kind kind)
{
	unsigned long n;
	unsigned i;

	if (!f->n_rules)
		return 0;
	n = ++f->seen[kind];
	for (i = 0; i < f->n_rules; i++)
		if (f->rules[i].kind == kind && f->rules[i].nth == n)
			return f->rules[i].err;
	return 0;
}

int rsc__fault(struct rsc_loop *loop, enum rsc__fault_kind kind)
{
	int err = rsc__fault_state_hit(&loop->faults, kind);

	if (err)
		loop->counters[RSC_CTR_FAULTS_INJECTED]++;
	return err;
}

/* No loop (a loop being torn down, a helper with none): never injected. */
static bool alloc_fails(struct rsc_loop *loop)
{
	return loop && rsc__fault(loop, RSC__F_ALLOC);
}

void *rsc__malloc(struct rsc_loop *loop, size_t size)
{
	return alloc_fails(loop) ? NULL : malloc(size);
}

void *rsc__calloc(struct rsc_loop *loop, size_t n, size_t size)
{
	return alloc_fails(loop) ? NULL : calloc(n, size);
}

void *rsc__aligned_alloc(struct rsc_loop *loop, size_t align, size_t size)
{
	return alloc_fails(loop) ? NULL : aligned_alloc(align, size);
}

void *rsc__realloc(struct rsc_loop *loop, void *p, size_t size)
{
	return alloc_fails(loop) ? NULL : realloc(p, size);
}

char *rsc__strdup(struct rsc_loop *loop, const char *s)
{
	return alloc_fails(loop) ? NULL : strdup(s);
}
#endif

#ifdef RSC_FAULT_INJECTION
/* "EMFILE" -> -EMFILE, by the names glibc knows. */
static int parse_errno(const char *s, size_t len)
{
	int e;

	for (e = 1; e < 4096; e++) {
		const char *name = strerrorname_np(e);

		if (name && strlen(name) == len && !strncmp(name, s, len))
			return -e;
	}
	return 0;
}

#define MISSING_PREFIX "missing:"

/* "missing:NAME": a feature, or an opcode below 64, into @f's masks. */
static int parse_missing(const char *s, size_t len, struct rsc_fault_state *f)
{
	const char *name = s + strlen(MISSING_PREFIX);
	size_t n = len - strlen(MISSING_PREFIX);
	int k;

	for (k = 0; k < RSC__MISSING__COUNT; k++)
		if (strlen(missing_names[k]) == n && !strncmp(missing_names[k], name, n)) {
			f->missing_features |= 1U << k;
			return 0;
		}
	k = n ? rsc__opcode_by_name(name, n) : -1;
	if (k < 0 || k >= 64)
		return -EINVAL;
	f->missing_ops |= UINT64_C(1) << k;
	return 0;
}

static bool is_missing_rule(const char *s, size_t len)
{
	return len >= strlen(MISSING_PREFIX) && !strncmp(s, MISSING_PREFIX, strlen(MISSING_PREFIX));
}

static int parse_rule(const char *s, size_t len, struct rsc_fault_rule *r)
{
	const char *c1 = memchr(s, ':', len), *c2;
	char *end;
	int k;

	if (!c1)
		return -EINVAL;
	c2 = memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - s));
	if (!c2)
		return -EINVAL;
	for (k = 0; k < RSC__F__COUNT; k++)
		if (strlen(kind_names[k]) == (size_t)(c1 - s) &&
		    !strncmp(kind_names[k], s, (size_t)(c1 - s)))
			break;
	if (k == RSC__F__COUNT)
		return -EINVAL;
	r->kind = (enum rsc__fault_kind)k;
	/* Digits only: strtoul alone takes "-1" (as ULONG_MAX), " 1" and "+1". */
	if (c1 + 1 == c2 || strspn(c1 + 1, "0123456789") != (size_t)(c2 - c1 - 1))
		return -EINVAL;
	errno = 0;
	r->nth = strtoul(c1 + 1, &end, 10);
	if (end != c2 || r->nth == 0 || r->nth > RSC__FAULT_NTH_MAX || errno)
		return -EINVAL;
	r->err = parse_errno(c2 + 1, len - (size_t)(c2 + 1 - s));
	if (!r->err)
		return -EINVAL;
	/* Ring kinds only make sense with the errors the ring really returns. */
	if (r->kind == RSC__F_SUBMIT)
		return r->err == -EBUSY || r->err == -EAGAIN || r->err == -EINTR ? 0 : -EINVAL;
	if (r->kind == RSC__F_WAIT)
		return r->err == -EINTR ? 0 : -EINVAL;
	if (r->kind == RSC__F_MSG_RING)
		return r->err == -EOPNOTSUPP ? 0 : -EINVAL;
	/* A failed malloc() has one meaning. */
	if (r->kind == RSC__F_ALLOC)
		return r->err == -ENOMEM ? 0 : -EINVAL;
	return 0;
}

/* @spec's rules into @next, or -EINVAL with the bad rule in rsc_last_error(). */
static int parse_spec(const char *spec, struct rsc_fault_state *next)
{
	unsigned n_rules = 0;
	const char *p;

	memset(next, 0, sizeof(*next));
	for (p = spec ? spec : ""; *p;) {
		size_t len = strcspn(p, ",");
		bool missing = is_missing_rule(p, len);

		if (n_rules++ == RSC__FAULT_RULES) {
			rsc__set_last_error("rsc_fault_set: at most %d rules", RSC__FAULT_RULES);
			return -EINVAL;
		}
		if (missing ? parse_missing(p, len, next) < 0 :
			      parse_rule(p, len, &next->rules[next->n_rules]) < 0) {
			rsc__set_last_error(missing ? "rsc_fault_set: bad rule '%.*s': expected missing:NAME, NAME an opcode (e.g. msg_ring) or a feature (e.g. defer_taskrun)" :
					    "rsc_fault_set: bad rule '%.*s': expected KIND:N:ERRNO, e.g. openat:3:EMFILE",
					    (int)len, p);
			return -EINVAL;
		}
		next->n_rules += !missing;
		p += len;
		/* "a," names an empty last rule, as ",a" and "a,,b" do: a missing field. */
		if (*p == ',' && !*++p) {
			rsc__set_last_error("rsc_fault_set: empty rule after the last ','");
			return -EINVAL;
		}
	}
	return 0;
}
#endif

int rsc_fault_set(struct rsc_loop *loop, const char *spec)
{
	RSC__CHECK_ARG(loop, "rsc_fault_set: loop is NULL");
	RSC__SAME_PROCESS(loop, "rsc_fault_set");
#ifndef RSC_FAULT_INJECTION
	(void)spec;
	rsc__set_last_error("rsc_fault_set: this build has no fault injection (configure --enable-fault-injection)");
	return -EOPNOTSUPP;
#else
	struct rsc_fault_state next;
	int ret = parse_spec(spec, &next);

	if (ret < 0)
		return ret;
	/* Occurrences count from this call on. */
	loop->faults = next;
	return 0;
#endif
}

/*
 * RINGSCOPE_FAULT's rules into @f, read before a new loop allocates anything:
 * alloc:1:ENOMEM is the loop's own allocation.
 */
int rsc__fault_from_env(struct rsc_fault_state *f)
{
	const char *spec = getenv("RINGSCOPE_FAULT");

	memset(f, 0, sizeof(*f));
	if (!spec || !spec[0])
		return 0;
#ifndef RSC_FAULT_INJECTION
	rsc__set_last_error("RINGSCOPE_FAULT is set, but this build has no fault injection (configure --enable-fault-injection)");
	return -EOPNOTSUPP;
#else
	return parse_spec(spec, f);
#endif
}
