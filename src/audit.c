/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/membarrier.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "internal.h"

int rsc__audit_level_from_env(void)
{
	const char *v = getenv("RINGSCOPE_AUDIT");

	if (!v || !v[0] || !strcmp(v, "off") || !strcmp(v, "0"))
		return RSC_AUDIT_OFF;
	if (!strcmp(v, "released") || !strcmp(v, "1"))
		return RSC_AUDIT_RELEASED;
	if (!strcmp(v, "full") || !strcmp(v, "2"))
		return RSC_AUDIT_FULL;
	rsc__set_last_error("RINGSCOPE_AUDIT=%s: expected off, released or full", v);
	return -EINVAL;
}

/* FULL: identity at acquire, so the release can tell its own file from a reuse. */
void rsc__audit_record(struct rsc_loop *loop, struct rsc__entry *e)
{
	struct stat st;

	(void)loop;
	if (!(e->config & RSC__CFG_FD) || e->value < 0)
		return;
	if (fstat(e->value, &st) == 0) {
		e->dev = st.st_dev;
		e->ino = st.st_ino;
		e->flags |= RSC__E_IDENTITY;
	}
}

static void fd_target(struct rsc_loop *loop, int fd, char *buf, size_t len)
{
	char name[16];
	ssize_t n;

	snprintf(name, sizeof(name), "%d", fd);
	if (loop->proc_fd_dir < 0) {
		snprintf(buf, len, "(unreadable)");
		return;
	}
	n = readlinkat(loop->proc_fd_dir, name, buf, len - 1);
	if (n < 0) {
		snprintf(buf, len, "%s", errno == ENOENT ? "(not open)" : "(unreadable)");
		return;
	}
	buf[n] = '\0';
}

/*
 * Opened when auditing is switched on, not when a finding is made: opened
 * lazily it would take the lowest free number, the very one being reported.
 */
int rsc__audit_open_proc_dir(struct rsc_loop *loop)
{
	if (loop->proc_fd_dir < 0) {
		loop->proc_fd_dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (loop->proc_fd_dir < 0)
			return -errno;
		rsc__ledger_set(loop->proc_fd_dir, RSC__LEDGER_RUNTIME);
	}
	return loop->proc_fd_dir;
}

/* A finding or a verdict that memory could not hold: never lost silently. */
static void audit_lost(struct rsc_loop *loop)
{
	loop->counters[RSC_CTR_AUDIT_LOST]++;
}

/* Record a finding; @target NULL: what /proc/self/fd says @fd names now. */
void rsc__audit_add_finding(struct rsc_loop *loop, int kind, int fd, const char *target,
			    const char *scope, const char *expected)
{
	rsc__audit_add_finding_at(loop, kind, fd, kind >= RSC_FINDING_SLOT_LEAKED, target, scope,
				  expected);
}

/* @slot: @fd is a slot of the direct table (a direct entry's finding of any kind). */
void rsc__audit_add_finding_at(struct rsc_loop *loop, int kind, int fd, bool slot,
			       const char *target, const char *scope, const char *expected)
{
	struct rsc_finding *f;

	if (loop->n_findings == loop->cap_findings) {
		unsigned cap = loop->cap_findings ? loop->cap_findings * 2 : 8;
		struct rsc_finding **v = rsc__realloc(loop, loop->findings, cap * sizeof(*v));

		if (!v) {
			audit_lost(loop);
			return;
		}
		loop->findings = v;
		loop->cap_findings = cap;
	}
	f = rsc__malloc(loop, sizeof(*f));
	if (!f) {
		audit_lost(loop);
		return;
	}
	loop->findings[loop->n_findings++] = f;
	f->kind = kind;
	f->fd = fd;
	f->slot = slot;
	if (target) {
		snprintf(f->target, sizeof(f->target), "%s", target);
	} else if (loop->proc_fd_dir < 0 && rsc__audit_open_proc_dir(loop) == fd) {
		/* Opened only now (a finding of an audit that was off): the open took
		 * the lowest free number, so the one reported was free. */
		snprintf(f->target, sizeof(f->target), "(not open)");
	} else {
		fd_target(loop, fd, f->target, sizeof(f->target));
	}
	snprintf(f->scope, sizeof(f->scope), "%s", scope);
	snprintf(f->expected, sizeof(f->expected), "%s", expected);
	rsc__obs_audit_finding(loop, f);
	/* Last: the trace callback may clear the findings (rsc_audit_clear), this one too. */
	rsc__trace(loop, RSC_EV_AUDIT_FINDING, NULL, NULL, fd);
}

/*
 * FULL, before a built-in close: the number still names the file acquired
 * (st_dev/st_ino). If it was closed behind the runtime's back and perhaps
 * reused, closing it would close someone else's descriptor: report instead.
 */
bool rsc__audit_still_ours(struct rsc_loop *loop, struct rsc__entry *e)
{
	char expected[320];
	struct stat st;

	if (!rsc__audit_checks_identity(loop, e))
		return true;
	if (fstat(e->value, &st) == 0 && st.st_dev == e->dev && st.st_ino == e->ino)
		return true;
	snprintf(expected, sizeof(expected),
		 "still open for the release of entry '%s' (%s); it was closed behind the runtime's back, so the runtime did not close it",
		 e->mgr->name, e->detail);
	rsc__audit_add_finding(loop, RSC_FINDING_NOT_RELEASED, e->value, NULL, e->scope->name, expected);
	return false;
}

/*
 * After a release that closed the entry's own descriptor through the ring:
 * the close's CQE is the kernel's word. 0 means that number left the fd
 * table, so if it is open again it names someone else's file (no false
 * alarm on reuse, and no syscall). -EBADF means the number had
 * already been closed behind the runtime's back: a double close.
 */
/* The close of @fd, one of @e's own numbers, said @res: -EBADF is a finding. */
static void check_close(struct rsc_loop *loop, struct rsc__entry *e, int fd, int res)
{
	char expected[320];

	/* close(2) releases the number even when it reports EIO or EINTR. */
	if (res != -EBADF)
		return;
	snprintf(expected, sizeof(expected),
		 "closed by the release of entry '%s' (%s), but its close failed with %s: it had been closed behind the runtime's back",
		 e->mgr->name, e->detail, rsc_err_name(res));
	rsc__audit_add_finding(loop, RSC_FINDING_NOT_RELEASED, fd, NULL, e->scope->name, expected);
}

void rsc__audit_check_released(struct rsc_loop *loop, struct rsc__entry *e)
{
	/* Slots (and a pipe's second end) are settled by the loop's table. */
	if (e->fd_kind == RSC__FD_DIRECT || e->has_value2) {
		rsc__direct_released(loop, e);
		if (e->fd_kind == RSC__FD_DIRECT)
			return;
	}
	if (loop->audit_level == RSC_AUDIT_OFF)
		return;
	check_close(loop, e, e->value, e->close_res);
	/* A pipe's write end is as much the entry's as its read end. */
	if (e->has_value2)
		check_close(loop, e, e->value2, e->close_res2);
}

static bool bit_set(const uint64_t *bits, unsigned nbits, int fd)
{
	return fd >= 0 && (unsigned)fd < nbits && (bits[fd / 64] >> (fd % 64)) & 1;
}

/* @fd (>= 0) in @bits, which the caller has made long enough. */
static void bit_put(uint64_t *bits, int fd)
{
	bits[fd / 64] |= 1ULL << (fd % 64);
}

/* Bitmap of the descriptors open now, excluding the scan's own handle. */
static int scan_fds(struct rsc_loop *loop, uint64_t **bitsp, unsigned *nbitsp)
{
	char buf[4096];
	uint64_t *bits = NULL;
	unsigned nbits = 0;
	ssize_t n;
	int dir = rsc__audit_open_proc_dir(loop);

	if (dir < 0)
		return dir;
	if (lseek(dir, 0, SEEK_SET) < 0)
		return -errno;
	while ((n = getdents64(dir, buf, sizeof(buf))) > 0) {
		ssize_t off = 0;

		while (off < n) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			char *end;
			long fd;

			off += d->d_reclen;
			fd = strtol(d->d_name, &end, 10);
			if (*end || end == d->d_name || fd == dir || fd < 0)
				continue;
			if ((unsigned)fd >= nbits) {
				unsigned want = ((unsigned)fd / 64 + 1) * 64 * 2;
				uint64_t *nb = rsc__realloc(loop, bits, want / 8);

				if (!nb) {
					free(bits);
					return -ENOMEM;
				}
				memset((char *)nb + nbits / 8, 0, (want - nbits) / 8);
				bits = nb;
				nbits = want;
			}
			bit_put(bits, fd);
		}
	}
	if (n < 0) {
		free(bits);
		return -errno;
	}
	*bitsp = bits;
	*nbitsp = nbits;
	return 0;
}


void rsc__audit_scope_open(struct rsc_loop *loop, struct rsc__scope *s)
{
	int ret;

	s->snap_seq = ++loop->audit_seq;
	ret = scan_fds(loop, &s->fd_snapshot, &s->fd_snapshot_bits);
	if (ret < 0) {
		if (ret == -ENOMEM)
			audit_lost(loop); /* its verdict, lost already */
		s->fd_snapshot = NULL; /* cannot read /proc: no verdict for this scope */
		s->fd_snapshot_bits = 0;
	}
}

/*
 * FULL: the kernel made @fd for an entry of @loop just now. A scope whose
 * snapshot saw that number saw another descriptor, closed since (behind
 * the runtime's back, or detached and closed by the caller): for its
 * verdict this one appeared inside it, so a custom exit that forgets it is
 * found. Without memory, judged by number as before.
 */
void rsc__audit_born(struct rsc_loop *loop, int fd)
{
	if (fd < 0)
		return;
	if ((unsigned)fd >= loop->n_fd_born) {
		unsigned n = ((unsigned)fd / 64 + 1) * 64;
		uint64_t *v;

		if (n < 2 * loop->n_fd_born)
			n = 2 * loop->n_fd_born;
		v = rsc__realloc(loop, loop->fd_born, n * sizeof(*v));
		if (!v)
			return;
		memset(v + loop->n_fd_born, 0, (n - loop->n_fd_born) * sizeof(*v));
		loop->fd_born = v;
		loop->n_fd_born = n;
	}
	loop->fd_born[fd] = ++loop->audit_seq;
}

/* Open when the snapshot taken at @seq was: by number, unless the kernel
 * made the descriptor that holds the number now for an entry since. */
static bool open_at_snapshot(const struct rsc_loop *loop, const uint64_t *bits,
			     unsigned nbits, uint64_t seq, int fd)
{
	if (!bit_set(bits, nbits, fd))
		return false;
	return (unsigned)fd >= loop->n_fd_born || loop->fd_born[fd] < seq;
}

/* Mark @fd in one snapshot as open before it (grown if need be; without
 * memory, the snapshot is dropped and that scope gives no verdict). */
static void mark_foreign(struct rsc_loop *loop, uint64_t **bitsp, unsigned *nbitsp, int fd)
{
	if (!*bitsp)
		return;
	if ((unsigned)fd >= *nbitsp) {
		unsigned want = ((unsigned)fd / 64 + 1) * 64;
		uint64_t *nb = rsc__realloc(loop, *bitsp, want / 8);

		if (!nb) {
			audit_lost(loop); /* that scope's verdict */
			free(*bitsp);
			*bitsp = NULL;
			*nbitsp = 0;
			return;
		}
		memset((char *)nb + *nbitsp / 8, 0, (want - *nbitsp) / 8);
		*bitsp = nb;
		*nbitsp = want;
	}
	bit_put(*bitsp, fd);
}

/* A descriptor rsc_entry_detach() gave the caller: the file it was then. */
struct rsc__disowned {
	dev_t dev;
	ino_t ino;
	bool set;
};

/* A scope of @loop, open or waiting for its verdict, has a snapshot to judge by. */
static bool snapshots_exist(struct rsc_loop *loop)
{
	struct rsc__scope *s;

	if (!rsc__list_empty(&loop->audit_pending))
		return true;
	for (s = loop->root; s; s = rsc__scope_next(loop->root, s))
		if (s->fd_snapshot)
			return true;
	return false;
}

/* Without memory for its identity: @fd is foreign to every snapshot, by number. */
static void disown_by_number(struct rsc_loop *loop, int fd)
{
	struct rsc_audit_pending *p;
	struct rsc__scope *s;

	if ((unsigned)fd < loop->n_fd_born)
		loop->fd_born[fd] = 0; /* foreign from now on, not new */
	for (s = loop->root; s; s = rsc__scope_next(loop->root, s))
		mark_foreign(loop, &s->fd_snapshot, &s->fd_snapshot_bits, fd);
	RSC__LIST_FOR_EACH(p, &loop->audit_pending, node)
		mark_foreign(loop, &p->fd_snapshot, &p->fd_snapshot_bits, fd);
}

/*
 * rsc_entry_detach() gave @fd to the caller: no scope of @loop may call it a
 * leak (not the entry's scope and its ancestors, nor the scope it was
 * acquired in before an rsc_entry_move, a sibling open meanwhile, or a
 * closed scope whose verdict waits for an acquire in flight). Spared by its
 * identity, not its number: once the caller has closed it, a descriptor the
 * program leaks on that number is judged like any other.
 */
void rsc__audit_disown(struct rsc_loop *loop, int fd)
{
	struct stat st;

	if (fd < 0 || !loop->root || !snapshots_exist(loop))
		return;
	if (fstat(fd, &st) < 0)
		return;
	if ((unsigned)fd >= loop->n_disowned) {
		unsigned n = ((unsigned)fd / 64 + 1) * 64;
		struct rsc__disowned *v;

		if (n < 2 * loop->n_disowned)
			n = 2 * loop->n_disowned;
		v = rsc__realloc(loop, loop->disowned, n * sizeof(*v));
		if (!v) {
			disown_by_number(loop, fd);
			return;
		}
		memset(v + loop->n_disowned, 0, (n - loop->n_disowned) * sizeof(*v));
		loop->disowned = v;
		loop->n_disowned = n;
	}
	loop->disowned[fd] = (struct rsc__disowned){ st.st_dev, st.st_ino, true };
}

/* @fd is still the file rsc_entry_detach() gave the caller; forgotten once it is not. */
static bool still_disowned(struct rsc_loop *loop, int fd)
{
	struct rsc__disowned *d;
	struct stat st;

	if ((unsigned)fd >= loop->n_disowned || !loop->disowned[fd].set)
		return false;
	d = &loop->disowned[fd];
	if (fstat(fd, &st) == 0 && st.st_dev == d->dev && st.st_ino == d->ino)
		return true;
	d->set = false; /* closed by the caller: the number is judged again */
	return false;
}

/* The live entry of @root's tree holding @fd, walked without recursion. */
static const struct rsc__entry *find_holder(const struct rsc__scope *root, int fd)
{
	const struct rsc__scope *s;
	const struct rsc__entry *e;

	for (s = root; s; s = rsc__scope_next(root, s))
		RSC__LIST_FOR_EACH(e, &s->entries, scope_node)
			/* Custom entries too: their value is usually a descriptor.
			 * A direct entry's value is a slot, never a descriptor. */
			if ((e->state == RSC_ENTERED || e->state == RSC_EXITING) &&
			    e->fd_kind == RSC__FD_PROCESS &&
			    (e->value == fd || (e->has_value2 && e->value2 == fd)))
				return e;
	return NULL;
}

/* One batch of verdicts: the reading they share, and the numbers the live
 * entries hold, gathered once when first needed (NULL: not yet, or no memory). */
struct batch {
	const uint64_t *now;
	unsigned nbits;
	uint64_t *held;
	bool held_made;
};

/* One walk of the tree for the whole batch, not one per descriptor: with
 * thousands of live custom entries a walk per number was quadratic. */
static uint64_t *held_numbers(struct rsc_loop *loop, unsigned nbits)
{
	const struct rsc__scope *s;
	const struct rsc__entry *e;
	uint64_t *held = rsc__calloc(loop, nbits / 64 + 1, sizeof(*held));

	if (!held)
		return NULL;
	for (s = loop->root; s; s = rsc__scope_next(loop->root, s))
		RSC__LIST_FOR_EACH(e, &s->entries, scope_node) {
			if ((e->state != RSC_ENTERED && e->state != RSC_EXITING) ||
			    e->fd_kind != RSC__FD_PROCESS)
				continue;
			if (e->value >= 0 && (unsigned)e->value < nbits)
				bit_put(held, e->value);
			if (e->has_value2 && e->value2 >= 0 && (unsigned)e->value2 < nbits)
				bit_put(held, e->value2);
		}
	return held;
}

/* Descriptors still held by live entries anywhere on this loop are not leaks. */
static bool held_by_entry(struct rsc_loop *loop, struct batch *b, int fd)
{
	if (!loop->root)
		return false;
	if (!b->held_made) {
		b->held = held_numbers(loop, b->nbits);
		b->held_made = true;
	}
	/* Without memory for the set, a walk per number, as before. */
	return b->held ? bit_set(b->held, b->nbits, fd) : find_holder(loop->root, fd) != NULL;
}

/*
 * The scope has unwound and its verdict waits for an acquire in flight. A
 * descriptor the program opens from now until the verdict appeared after
 * the scope had unwound: no leak of it (ringscope_audit(7)), even on a
 * number that was new here and has been closed since. So the candidates
 * are what is new now, each with its identity; the verdict reports only
 * those still open as the same file.
 */
static void note_candidates(struct rsc_loop *loop, struct rsc_audit_pending *p)
{
	struct rsc_audit_cand *c = NULL, *nc;
	uint64_t *now = NULL;
	unsigned nbits = 0, n = 0, cap = 0, fd;
	struct stat st;

	if (scan_fds(loop, &now, &nbits) < 0)
		return; /* judged by number at the verdict */
	for (fd = 0; fd < nbits; fd++) {
		if (!bit_set(now, nbits, (int)fd) ||
		    open_at_snapshot(loop, p->fd_snapshot, p->fd_snapshot_bits, p->snap_seq, (int)fd) ||
		    rsc__ledger_owner((int)fd) || /* an entry's now: if later no one's, not ours */
		    fstat((int)fd, &st) < 0)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			nc = rsc__realloc(loop, c, cap * sizeof(*c));
			if (!nc) {
				free(c);
				free(now);
				return;
			}
			c = nc;
		}
		c[n].fd = (int)fd;
		c[n].dev = st.st_dev;
		c[n++].ino = st.st_ino;
	}
	free(now);
	p->cands = c;
	p->n_cands = n;
	p->has_cands = true;
}

/* Still open as the file it was when its scope had unwound (candidates
 * are in ascending order of number). */
static bool still_candidate(const struct rsc_audit_pending *p, int fd)
{
	unsigned lo = 0, hi = p->n_cands;
	struct stat st;

	if (!p->has_cands)
		return true;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (p->cands[mid].fd < fd)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < p->n_cands && p->cands[lo].fd == fd && fstat(fd, &st) == 0 &&
	       st.st_dev == p->cands[lo].dev && st.st_ino == p->cands[lo].ino;
}

/* The scope has unwound: queue its verdict (see struct rsc_audit_pending). */
void rsc__audit_scope_closed(struct rsc_loop *loop, struct rsc__scope *s)
{
	struct rsc_audit_pending *p = rsc__malloc(loop, sizeof(*p));

	if (!p) {
		audit_lost(loop); /* its verdict */
		return;
	}
	p->fd_snapshot = s->fd_snapshot;
	p->fd_snapshot_bits = s->fd_snapshot_bits;
	p->snap_seq = s->snap_seq;
	s->fd_snapshot = NULL;
	s->fd_snapshot_bits = 0;
	p->cands = NULL;
	p->n_cands = 0;
	p->has_cands = false;
	snprintf(p->scope, sizeof(p->scope), "%s", s->name);
	/* Oldest first, as the scopes unwound. */
	rsc__list_push_back(&loop->audit_pending, &p->node);
	rsc__audit_flush(loop); /* at once, unless an acquire is in flight */
	if (!rsc__list_empty(&loop->audit_pending))
		note_candidates(loop, p);
}

static void pending_free(struct rsc_audit_pending *p)
{
	free(p->fd_snapshot);
	free(p->cands);
	free(p);
}

static void verdict(struct rsc_loop *loop, const struct rsc_audit_pending *p, struct batch *b)
{
	const uint64_t *now = b->now;
	unsigned nbits = b->nbits;
	char expected[320];
	unsigned fd;

	for (fd = 0; fd < nbits; fd++) {
		if (!bit_set(now, nbits, (int)fd) ||
		    open_at_snapshot(loop, p->fd_snapshot, p->fd_snapshot_bits, p->snap_seq, (int)fd))
			continue;
		if ((int)fd == loop->ring->ring_fd || (int)fd == loop->proc_fd_dir)
			continue;
		/* Owned, by a live entry of any loop or by the runtime itself (the
		 * ledger): another thread's loop, a waker ring, is no leak of ours. */
		if (rsc__ledger_owner((int)fd))
			continue;
		if (held_by_entry(loop, b, (int)fd))
			continue;
		if (still_disowned(loop, (int)fd))
			continue; /* the caller's, by rsc_entry_detach() */
		if (!still_candidate(p, (int)fd))
			continue;
		snprintf(expected, sizeof(expected),
			 "closed: it was not open when scope '%s' opened, and the scope has unwound",
			 p->scope);
		rsc__audit_add_finding(loop, RSC_FINDING_LEAKED, (int)fd, NULL, p->scope, expected);
	}
}

/* Settle the queued verdicts once no acquire is in flight: one scan for all. */
void rsc__audit_flush(struct rsc_loop *loop)
{
	struct rsc_audit_pending *p;
	struct rsc__list list;
	struct batch b = { 0 };
	uint64_t *now = NULL;
	unsigned nbits = 0;
	int scanned;

	if (rsc__list_empty(&loop->audit_pending) || loop->n_entering || loop->n_orphans)
		return;
	/* A callback forked and this is the child's copy: the verdicts are the
	 * parent's (its /proc/self/fd, its completions). */
	if (rsc__loop_forked(loop))
		return;
	scanned = scan_fds(loop, &now, &nbits);
	if (scanned < 0)
		nbits = 0; /* /proc unreadable: no verdict rather than a wrong one */
	/*
	 * An accept (multishot above all) is never "in flight" in n_entering,
	 * yet the kernel installs its descriptor and posts its CQE in the same
	 * task work, which runs whenever this thread enters the kernel (the
	 * scan's own getdents included). A CQE waiting now, in the CQ or in
	 * the kernel's overflow list, may name a number the scan saw: settle
	 * nothing until it has been dispatched.
	 */
	if (rsc__cq_holds_ours(loop) || io_uring_cq_has_overflow(loop->ring) ||
	    loop->stash_len || loop->undispatched) {
		free(now);
		return;
	}
	b.now = now;
	b.nbits = nbits;
	rsc__list_move_all(&list, &loop->audit_pending);
	RSC__LIST_FOR_EACH_SAFE(p, &list, node) {
		if (nbits)
			verdict(loop, p, &b);
		else if (scanned == -ENOMEM)
			audit_lost(loop);
		pending_free(p);
	}
	free(b.held);
	free(now);
}

void rsc__audit_free(struct rsc_loop *loop)
{
	struct rsc_audit_pending *p;

	/* Judged before the tree went (loop.c, loop_free), or never. */
	RSC__LIST_FOR_EACH_SAFE(p, &loop->audit_pending, node)
		pending_free(p);
	rsc__list_init(&loop->audit_pending);
	if (loop->proc_fd_dir >= 0) {
		rsc__ledger_forget(loop->proc_fd_dir, RSC__LEDGER_RUNTIME);
		close(loop->proc_fd_dir);
	}
	loop->proc_fd_dir = -1;
	free(loop->fd_born);
	loop->fd_born = NULL;
	loop->n_fd_born = 0;
	free(loop->disowned);
	loop->disowned = NULL;
	loop->n_disowned = 0;
	rsc_audit_clear(loop);
	free(loop->findings);
	loop->findings = NULL;
	loop->n_findings = loop->cap_findings = 0;
}

int rsc_audit_fd_count(void)
{
	struct dirent *d;
	DIR *dir = opendir("/proc/self/fd");
	int n = 0;

	if (!dir)
		return -errno;
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	return n - 1; /* the directory's own descriptor */
}

int rsc_audit_count(const struct rsc_loop *loop)
{
	RSC__CHECK_ARG(loop, "rsc_audit_count: loop is NULL");
	return (int)loop->n_findings;
}

const struct rsc_finding *rsc_audit_finding(const struct rsc_loop *loop,
					    unsigned i)
{
	return loop && i < loop->n_findings ? loop->findings[i] : NULL;
}

int rsc_audit_clear(struct rsc_loop *loop)
{
	RSC__CHECK_ARG(loop, "rsc_audit_clear: loop is NULL");
	RSC__SAME_PROCESS(loop, "rsc_audit_clear");
	while (loop->n_findings)
		free(loop->findings[--loop->n_findings]);
	return 0;
}

int rsc_audit_print(const struct rsc_loop *loop, FILE *out)
{
	unsigned i;
	int ret = 0;

	RSC__CHECK_ARG(loop, "rsc_audit_print: loop is NULL");
	RSC__CHECK_ARG(out, "rsc_audit_print: out is NULL");
	flockfile(out); /* one finding, one line, whatever other threads write to @out */
	for (i = 0; i < loop->n_findings && ret == 0; i++) {
		const struct rsc_finding *f = loop->findings[i];

		if (fprintf(out, "ringscope audit: %s %s %d -> ",
			    f->kind == RSC_FINDING_LEAKED || f->kind == RSC_FINDING_SLOT_LEAKED ?
			    "leaked" : f->kind == RSC_FINDING_SLOT_MISMATCH ? "mismatched" :
			    "not released",
			    f->slot ? "slot" : "fd", f->fd) < 0 ||
		    rsc__fput_text(f->target, out) < 0 || fputs(" in scope '", out) == EOF ||
		    rsc__fput_text(f->scope, out) < 0 || fputs("': expected ", out) == EOF ||
		    rsc__fput_text(f->expected, out) < 0 || putc('\n', out) == EOF)
			ret = -EIO;
	}
	ret = rsc__print_done(out, ret, "rsc_audit_print");
	funlockfile(out);
	return ret < 0 ? ret : (int)loop->n_findings;
}

int rsc_finding_kind(const struct rsc_finding *f)
{
	RSC__CHECK_ARG(f, "rsc_finding_kind: f is NULL");
	return f->kind;
}

int rsc_finding_fd(const struct rsc_finding *f)
{
	RSC__CHECK_ARG(f, "rsc_finding_fd: f is NULL");
	return f->fd;
}

const char *rsc_finding_target(const struct rsc_finding *f)
{
	return f ? f->target : "";
}

const char *rsc_finding_scope(const struct rsc_finding *f)
{
	return f ? f->scope : "";
}

const char *rsc_finding_expected(const struct rsc_finding *f)
{
	return f ? f->expected : "";
}

/*
 * Loops alive in this process, so that an auditor running inside it
 * (ringscope-audit's preload, through dlsym) can ask who holds a number.
 */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rsc__list live_loops = RSC__LIST_INIT(live_loops);

/* fork.c: held across a fork(2), so that the child's copy is whole and free. */
pthread_mutex_t *const rsc__audit_fork_lock = &live_lock;

unsigned rsc__describers;
bool rsc__membarrier;
static pthread_once_t fence_once = PTHREAD_ONCE_INIT;

/* Before the first loop, so before any handle is dropped (rsc__audit_quiesce). */
static void fence_init(void)
{
	long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	rsc__membarrier = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
			  syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

/* A describer holds live_lock while it reads: once it is ours, none reads. */
void rsc__audit_wait_describers(void)
{
	pthread_mutex_lock(&live_lock);
	pthread_mutex_unlock(&live_lock);
}

void rsc__audit_register(struct rsc_loop *loop)
{
	pthread_once(&fence_once, fence_init);
	pthread_mutex_lock(&live_lock);
	rsc__list_push_front(&live_loops, &loop->live_node);
	pthread_mutex_unlock(&live_lock);
}

void rsc__audit_unregister(struct rsc_loop *loop)
{
	pthread_mutex_lock(&live_lock);
	rsc__list_remove(&loop->live_node);
	pthread_mutex_unlock(&live_lock);
}

int rsc_audit_describe_fd(int fd, char *buf, size_t len)
{
	struct rsc__entry *e;
	struct rsc__scope *s;
	char site[160] = "an unknown site";
	uint64_t h;
	Dl_info di;
	int n;

	RSC__CHECK_ARG(fd >= 0, "rsc_audit_describe_fd: fd %d is negative", fd);
	RSC__CHECK_ARG(buf || !len, "rsc_audit_describe_fd: buf is NULL and len is %zu", len);
	/* Lock-free first: the common answer (nobody owns it) costs one load. */
	h = rsc__ledger_owner(fd);
	if (!h || (h & RSC__LEDGER_CLOSING)) /* its close is being submitted */
		return -ENOENT;
	/* Counted first (rsc__audit_quiesce): an entry or scope freed from now on
	 * either waits for this lock, or is already stale in the check below. */
	__atomic_add_fetch(&rsc__describers, 1, __ATOMIC_SEQ_CST);
	/* Every other thread's drop before this is seen below; after it, the
	 * count is seen there (the droppers' side of the fence, handle.c). */
	if (rsc__membarrier)
		(void)syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	/* A loop is freed only after it leaves the live list, under this lock. */
	pthread_mutex_lock(&live_lock);
	if (!(e = rsc__entry_live(h)) || !rsc__handle_still(h) || rsc__ledger_owner(fd) != h) {
		pthread_mutex_unlock(&live_lock);
		__atomic_sub_fetch(&rsc__describers, 1, __ATOMIC_RELEASE);
		return -ENOENT;
	}
	/* rsc_entry_move may change it on the owner's thread meanwhile. */
	s = __atomic_load_n(&e->scope, __ATOMIC_ACQUIRE);
	/* Symbolized only now: recording the site cost one return address. */
	if (e->site && dladdr(e->site, &di) && di.dli_fname) {
		if (di.dli_sname)
			snprintf(site, sizeof(site), "%s+0x%lx (%s)", di.dli_sname,
				 (unsigned long)((const char *)e->site - (const char *)di.dli_saddr),
				 di.dli_fname);
		else
			snprintf(site, sizeof(site), "%s+0x%lx", di.dli_fname,
				 (unsigned long)((const char *)e->site - (const char *)di.dli_fbase));
	}
	n = snprintf(buf, len, "ringscope entry '%s'%s%s%s in scope '%s', acquired at %s",
		     e->mgr->name, e->detail[0] ? " (" : "", e->detail,
		     e->detail[0] ? ")" : "", s->name, site);
	pthread_mutex_unlock(&live_lock);
	__atomic_sub_fetch(&rsc__describers, 1, __ATOMIC_RELEASE);
	return n < 0 ? -EIO : n;
}
