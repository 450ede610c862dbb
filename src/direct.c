/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "internal.h"

/*
 * The loop's direct descriptor table: io_uring's registered file table,
 * registered sparse (io_uring_register_files_sparse(3), Linux 5.19) and
 * split by io_uring_register_file_alloc_range(3) (Linux 6.0) in two:
 *   [0, alloc_n)     the kernel allocates from it (IORING_FILE_INDEX_ALLOC):
 *                    direct open, socket and accept;
 *   [alloc_n, size)  the runtime hands slots out, so that a linked chain can
 *                    name a slot before the step that fills it has run.
 * A slot never appears in /proc/self/fd, so no outside tool sees one leak:
 * the table records who owns each slot (an entry handle, its scope's name and
 * what it acquired), and the audit reports what is still in use after its
 * owner is gone. Slots are per loop: the process-wide ledger (ledger.c)
 * never holds one.
 */

enum dslot_state { DSLOT_FREE = 0, DSLOT_RESERVED, DSLOT_USED, DSLOT_ORPHAN };

struct rsc__dslot {
	uint8_t state;
	bool closing;	/* ORPHAN: its close_direct is in flight */
	uint64_t owner; /* entry handle while USED: names come from the entry */
	/* Written only when the slot outlives its owner (ORPHAN): nothing is
	 * formatted on the acquire/release path. */
	char scope[RSC_NAME_MAX];
	char what[80];	/* "file /tmp/x", "socket AF_INET/SOCK_STREAM" */
};

struct rsc__direct {
	unsigned size, alloc_n;
	unsigned used;	  /* any but FREE, both ranges: a chain's RESERVED slot is held too */
	unsigned used_alloc; /* USED or ORPHAN in the kernel's range */
	unsigned pending;    /* kernel-range acquires in flight */
	unsigned armed;	     /* direct accepts armed or backing off: they acquire into it */
	unsigned *free_stack; /* runtime range: free slots, lowest on top */
	unsigned n_free;
	struct rsc__dslot *slots;
	struct rsc__list inboxes; /* handover.c: where other loops send slots */
};

struct rsc__list *rsc__direct_inboxes(struct rsc_loop *loop)
{
	return loop->direct ? &loop->direct->inboxes : NULL;
}

static void table_free(struct rsc__direct *d)
{
	if (!d)
		return;
	free(d->free_stack);
	free(d->slots);
	free(d);
}

/* A table's memory, not yet registered: NULL without memory. */
static struct rsc__direct *table_alloc(struct rsc_loop *loop, unsigned slots, unsigned chain_slots)
{
	struct rsc__direct *d;
	unsigned i;

	d = rsc__calloc(loop, 1, sizeof(*d));
	if (!d)
		return NULL;
	rsc__list_init(&d->inboxes);
	d->size = slots;
	d->alloc_n = slots - chain_slots;
	d->slots = rsc__calloc(loop, slots, sizeof(*d->slots));
	d->free_stack = rsc__calloc(loop, chain_slots ? chain_slots : 1, sizeof(*d->free_stack));
	if (!d->slots || !d->free_stack) {
		table_free(d);
		return NULL;
	}
	for (i = 0; i < chain_slots; i++)
		d->free_stack[i] = slots - 1 - i; /* the lowest is handed out first */
	d->n_free = chain_slots;
	return d;
}

/*
 * The kernel takes a table of @slots only under the soft RLIMIT_NOFILE: raise
 * it to @slots when the hard limit allows (liburing 2.3 tries the soft limit
 * plus @slots, which the hard limit often refuses when @slots alone fits).
 */
static void make_room_under_nofile(unsigned slots)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < slots &&
	    (rl.rlim_max == RLIM_INFINITY || slots <= rl.rlim_max)) {
		rl.rlim_cur = slots;
		(void)setrlimit(RLIMIT_NOFILE, &rl); /* refused: the register says -EMFILE */
	}
}

/* @d registered with the kernel, sparse, and split; no memory needed. */
static int table_register(struct rsc_loop *loop, const struct rsc__direct *d)
{
	unsigned slots = d->size, chain_slots = d->size - d->alloc_n;
	int ret;

	make_room_under_nofile(slots);
	ret = io_uring_register_files_sparse(loop->ring, slots);
	if (ret < 0) {
		rsc__set_last_error("cannot register a direct table of %u slots: %s%s", slots,
				    rsc_strerror(ret),
				    ret == -EMFILE ? " (more than RLIMIT_NOFILE)" :
				    ret == -EINVAL ? " (sparse tables need Linux 5.19)" :
				    ret == -EBUSY ? " (the ring has a file table already: the application's own)" : "");
		return ret;
	}
	/* Linux 6.0: where IORING_FILE_INDEX_ALLOC may allocate. */
	ret = io_uring_register_file_alloc_range(loop->ring, 0, d->alloc_n);
	if (ret < 0) {
		rsc__set_last_error("cannot split the direct table (%u slots, %u for chains): io_uring_register_file_alloc_range: %s%s",
				    slots, chain_slots, rsc_strerror(ret),
				    ret == -EINVAL ? " (needs Linux 6.0)" : "");
		(void)io_uring_unregister_files(loop->ring);
		return ret;
	}
	return 0;
}

int rsc__direct_setup(struct rsc_loop *loop, unsigned slots, unsigned chain_slots)
{
	struct rsc__direct *d = table_alloc(loop, slots, chain_slots);
	int ret;

	if (!d)
		return -ENOMEM;
	ret = table_register(loop, d);
	if (ret < 0) {
		table_free(d);
		return ret;
	}
	loop->direct = d;
	return 0;
}

void rsc__direct_free(struct rsc_loop *loop)
{
	/* The ring's exit drops what the kernel still holds in it. */
	table_free(loop->direct);
	loop->direct = NULL;
}

int rsc_loop_set_direct(struct rsc_loop *loop, unsigned slots, unsigned chain_slots)
{
	struct rsc__direct *old, *fresh = NULL;
	int ret;

	RSC__CHECK_ARG(loop, "rsc_loop_set_direct: loop is NULL");
	RSC__SAME_PROCESS(loop, "rsc_loop_set_direct");
	RSC__CHECK_ARG(chain_slots <= slots,
		       "rsc_loop_set_direct: %u chain slots is more than the table's %u",
		       chain_slots, slots);
	RSC__CHECK_ARG(slots <= RSC_DIRECT_SLOTS_MAX,
		       "rsc_loop_set_direct: %u slots is more than %u", slots,
		       RSC_DIRECT_SLOTS_MAX);
	ret = rsc__check_not_in_callback(loop, "rsc_loop_set_direct");
	if (ret < 0)
		return ret;
	old = loop->direct;
	if (old) {
		unsigned chain_n = old->size - old->alloc_n;
		bool inboxes = !rsc__list_empty(&old->inboxes);

		if (old->used || old->pending || old->armed || old->n_free != chain_n || inboxes) {
			rsc__set_last_error("rsc_loop_set_direct: %u of the table's %u slots are in use%s%s",
					    old->used, old->size, inboxes ? ", and an inbox is open" : "",
					    old->armed ? ", and a direct accept is armed" : "");
			return -EBUSY;
		}
	}
	/* The new table's memory first: refused for it, the loop keeps its table. */
	if (slots && !(fresh = table_alloc(loop, slots, chain_slots))) {
		rsc__set_last_error("rsc_loop_set_direct: no memory for a table of %u slots", slots);
		return -ENOMEM;
	}
	if (old) {
		ret = io_uring_unregister_files(loop->ring);
		if (ret < 0) {
			rsc__set_last_error("rsc_loop_set_direct: io_uring_unregister_files: %s",
					    rsc_strerror(ret));
			table_free(fresh);
			return ret;
		}
		loop->direct = NULL;
	}
	ret = fresh ? table_register(loop, fresh) : 0;
	if (ret < 0) {
		table_free(fresh);
		/* Refused (-EMFILE...): the loop keeps the table it had, empty as it
		 * was; the kernel allows one table at a time, so it is registered again. */
		if (old && table_register(loop, old) == 0) {
			loop->direct = old;
			return ret;
		}
		if (old)
			rsc__set_last_error("rsc_loop_set_direct: a table of %u slots was refused (%s), and the old table of %u could not be registered again: the loop has none",
					    slots, rsc_strerror(ret), old->size);
		table_free(old);
		return ret;
	}
	table_free(old);
	loop->direct = fresh;
	return 0;
}

int rsc__direct_need(struct rsc_loop *loop, const char *fn)
{
	if (loop->direct)
		return 0;
	rsc__set_last_error("%s: RSC_DIRECT on a loop without a direct table (create it with RSC_LOOP_DIRECT, or call rsc_loop_set_direct)",
			    fn);
	return -ENXIO;
}

/* ENFILE is what the kernel answers when its range is full (io_file_bitmap_get). */
int rsc__direct_check_room(struct rsc_loop *loop, unsigned n, const char *fn)
{
	struct rsc__direct *d = loop->direct;

	if (d->used_alloc + d->pending + n <= d->alloc_n)
		return 0;
	rsc__set_last_error("%s: the direct table is full: %u of its %u kernel-allocated slots in use or being acquired (table of %u slots, %u for chains)",
			    fn, d->used_alloc + d->pending, d->alloc_n, d->size,
			    d->size - d->alloc_n);
	return -ENFILE;
}

int rsc__direct_reserve(struct rsc_loop *loop, const char *fn)
{
	struct rsc__direct *d = loop->direct;
	unsigned slot;

	if (!d->n_free) {
		rsc__set_last_error("%s: no free slot in the direct table's chain range (all %u of its slots in use or reserved, table of %u)",
				    fn, d->size - d->alloc_n, d->size);
		return -ENFILE;
	}
	slot = d->free_stack[--d->n_free];
	assert(d->slots[slot].state == DSLOT_FREE);
	d->slots[slot].state = DSLOT_RESERVED;
	/* Held from here: the kernel may fill it at any moment of the chain
	 * (rsc_loop_direct_used(3) counts it, as set_direct refuses for it). */
	d->used++;
	return (int)slot;
}

static void slot_free(struct rsc__direct *d, unsigned slot)
{
	struct rsc__dslot *sl = &d->slots[slot];

	if (sl->state != DSLOT_FREE) {
		d->used--;
		if (slot < d->alloc_n)
			d->used_alloc--; /* RESERVED is only ever a chain-range slot */
	}
	sl->state = DSLOT_FREE;
	sl->closing = false;
	sl->owner = 0;
	if (slot >= d->alloc_n)
		d->free_stack[d->n_free++] = slot;
}

void rsc__direct_unreserve(struct rsc_loop *loop, int slot)
{
	struct rsc__direct *d = loop->direct;

	assert(d && slot >= 0 && (unsigned)slot < d->size &&
	       d->slots[slot].state == DSLOT_RESERVED);
	slot_free(d, (unsigned)slot);
}

void rsc__direct_pending(struct rsc_loop *loop, int delta)
{
	if (loop->direct)
		loop->direct->pending += delta;
}

void rsc__direct_armed(struct rsc_loop *loop, int delta)
{
	if (loop->direct)
		loop->direct->armed += delta;
}

static void describe(struct rsc__dslot *sl, const struct rsc__entry *e)
{
	snprintf(sl->scope, sizeof(sl->scope), "%s", e->scope->name);
	snprintf(sl->what, sizeof(sl->what), "%s%s%s", e->mgr->name,
		 e->detail[0] ? " " : "", e->detail);
}

/* A USED slot's names, from its live owner (for a finding). */
static void describe_owner(struct rsc__dslot *sl)
{
	struct rsc__entry *e;

	if (sl->state == DSLOT_USED &&
	    (e = rsc__entry_live(sl->owner)))
		describe(sl, e);
}

static bool slot_leaving(const struct rsc__dslot *sl);

/*
 * The kernel gives out only empty slots. One it gave to @to while the table
 * still names a live owner that has not started its release was emptied
 * behind that owner's back (a custom SQE's close_direct, say). The old owner
 * lets the number go unclosed, so that its release and its I/O cannot reach
 * @to's file (DESIGN 7: one owner), and the audit names it.
 */
static void slot_lost(struct rsc_loop *loop, struct rsc__dslot *sl, int slot,
		      const struct rsc__entry *to)
{
	struct rsc__entry *old = rsc__entry_live(sl->owner);
	char expected[320];

	/* Its release, or a hand-over or install, has emptied it: the slot was free. */
	if (!old || old == to || slot_leaving(sl))
		return;
	if (old->value == slot)
		old->value = -1;
	else if (old->has_value2 && old->value2 == slot)
		old->value2 = -1;
	else
		return;
	old->flags |= RSC__E_SLOT_LOST;
	if (loop->audit_level == RSC_AUDIT_OFF)
		return;
	describe(sl, old);
	snprintf(expected, sizeof(expected),
		 "in use until the release of entry '%s' (%s), but the kernel gave it to entry '%s' (%s) of scope '%s': it had been emptied behind the runtime's back",
		 old->mgr->name, old->detail, to->mgr->name, to->detail, to->scope->name);
	rsc__audit_add_finding_at(loop, RSC_FINDING_NOT_RELEASED, slot, true, sl->what, sl->scope,
				  expected);
}

void rsc__direct_own(struct rsc_loop *loop, int slot, const struct rsc__entry *e)
{
	struct rsc__direct *d = loop->direct;
	struct rsc__dslot *sl;

	if (!d || slot < 0 || (unsigned)slot >= d->size)
		return;
	sl = &d->slots[slot];
	if (sl->state == DSLOT_USED && sl->owner != e->h)
		slot_lost(loop, sl, slot, e);
	if (sl->state == DSLOT_FREE) {
		d->used++;
		if ((unsigned)slot < d->alloc_n)
			d->used_alloc++;
	}
	sl->state = DSLOT_USED;
	sl->owner = e->h;
}

void rsc__direct_move(struct rsc_loop *loop, const struct rsc__entry *e,
		      const struct rsc__entry *to)
{
	struct rsc__direct *d = loop->direct;

	if (d && e->value >= 0 && (unsigned)e->value < d->size &&
	    d->slots[e->value].owner == e->h)
		d->slots[e->value].owner = to->h;
	if (d && e->has_value2 && e->value2 >= 0 && (unsigned)e->value2 < d->size &&
	    d->slots[e->value2].owner == e->h)
		d->slots[e->value2].owner = to->h;
}

/*
 * After a direct entry's release: close_direct's CQE is the kernel's word
 * (io_uring/filetable.c io_fixed_fd_remove: 0 removed, -EBADF empty). 0: the
 * slot is free again. -EBADF: it had been emptied behind the runtime's back.
 * Anything else: the kernel did not remove it, so it stays in use with no
 * owner, and its scope is named in a finding.
 */
/*
 * @close_res: the CQE of the slot's own close_direct (1: none was seen, then
 * the release's error). Not the release's error alone: an fsync linked before
 * the close, or the other end of a pipe, may have failed while this close
 * emptied the slot.
 */
static void release_slot(struct rsc_loop *loop, struct rsc__entry *e, int slot, int close_res)
{
	struct rsc__direct *d = loop->direct;
	struct rsc__dslot *sl;
	char expected[320];
	int res = close_res == 1 ? e->exit_res : close_res;

	if (!d || slot < 0 || (unsigned)slot >= d->size)
		return;
	sl = &d->slots[slot];
	if (sl->owner != e->h)
		return; /* not this entry's (released twice cannot happen; be safe) */
	if (res == 0) {
		slot_free(d, (unsigned)slot);
		return;
	}
	describe(sl, e); /* a finding follows: name it while the entry lives */
	if (res == -EBADF) {
		if (loop->audit_level != RSC_AUDIT_OFF) {
			snprintf(expected, sizeof(expected),
				 "in use until the release of entry '%s' (%s), but close_direct found the slot empty: it was emptied behind the runtime's back",
				 e->mgr->name, e->detail);
			rsc__audit_add_finding_at(loop, RSC_FINDING_NOT_RELEASED, slot, true, sl->what,
						  sl->scope, expected);
		}
		slot_free(d, (unsigned)slot);
		return;
	}
	sl->state = DSLOT_ORPHAN;
	sl->owner = 0;
	snprintf(expected, sizeof(expected),
		 "free once scope '%s' released it, but its close_direct failed with %s: the slot is still in use",
		 sl->scope, rsc_err_name(res));
	rsc__audit_add_finding(loop, RSC_FINDING_SLOT_LEAKED, slot, sl->what, sl->scope, expected);
}

void rsc__direct_released(struct rsc_loop *loop, struct rsc__entry *e)
{
	if (e->fd_kind == RSC__FD_PROCESS) {
		/* A pipe of process descriptors: the ledger lets its write end go if
		 * its close has not (the read end is settled with RSC__E_LEDGER as any). */
		rsc__entry_close2_ran(e);
		return;
	}
	release_slot(loop, e, e->value, e->close_res);
	if (e->has_value2)
		release_slot(loop, e, e->value2, e->close_res2);
}

static void orphan_closed(struct rsc_loop *loop, struct rsc_op *op, int res,
			  unsigned cqe_flags)
{
	struct rsc__dslot *sl;

	(void)cqe_flags;
	if (!loop->direct || op->backoff_ms >= loop->direct->size)
		return;
	sl = &loop->direct->slots[op->backoff_ms];
	if (sl->state != DSLOT_ORPHAN)
		return;
	sl->closing = false;
	/* The slot came back to us only to be closed: now it is free. */
	if (res == 0 || res == -EBADF)
		slot_free(loop->direct, op->backoff_ms);
}

/* rsc_entry_install(): the descriptor owns the file now; the slot's close came. */
void rsc__direct_drop(struct rsc_loop *loop, int slot, int res)
{
	struct rsc__direct *d = loop->direct;
	struct rsc__dslot *sl;
	char expected[320];

	if (!d || slot < 0 || (unsigned)slot >= d->size)
		return;
	sl = &d->slots[slot];
	if (res == 0 || res == -EBADF) {
		slot_free(d, (unsigned)slot);
		return;
	}
	describe_owner(sl);
	sl->state = DSLOT_ORPHAN;
	sl->owner = 0;
	snprintf(expected, sizeof(expected),
		 "free once its file was installed as a descriptor, but its close_direct failed with %s",
		 rsc_err_name(res));
	rsc__audit_add_finding(loop, RSC_FINDING_SLOT_LEAKED, slot, sl->what, sl->scope, expected);
}

void rsc__direct_close_orphan(struct rsc_loop *loop, int slot)
{
	struct rsc__direct *d = loop->direct;
	struct io_uring_sqe *sqe;
	struct rsc_op *op;

	if (!d || slot < 0 || (unsigned)slot >= d->size)
		return;
	/* Counted in use until its close completes: nothing may reuse it. */
	if (d->slots[slot].state == DSLOT_FREE) {
		d->used++;
		if ((unsigned)slot < d->alloc_n)
			d->used_alloc++;
	}
	d->slots[slot].state = DSLOT_ORPHAN;
	d->slots[slot].owner = 0;
	snprintf(d->slots[slot].what, sizeof(d->slots[slot].what), "connection");
	d->slots[slot].scope[0] = '\0'; /* its scope was closing: nobody's */
	op = rsc__op_with_sqe(loop, &sqe);
	if (!op) {
		/* No op or no SQE: emptied at once by the register call, which
		 * needs neither (io_uring_register(2), IORING_REGISTER_FILES_UPDATE). */
		int none = -1;

		if (rsc__loop_forked(loop))
			return; /* a callback forked: the table is the parent's */
		if (io_uring_register_files_update(loop->ring, (unsigned)slot, &none, 1) == 1)
			slot_free(d, (unsigned)slot);
		return; /* else it stays an orphan: the audit names it */
	}
	/* Never IOSQE_FIXED_FILE on a close: the slot is named by file_index. */
	io_uring_prep_close_direct(sqe, (unsigned)slot);
	op->complete = orphan_closed;
	op->opcode = IORING_OP_CLOSE;
	d->slots[slot].closing = true;
	op->backoff_ms = (unsigned)slot; /* the slot, for its completion */
}

/*
 * Free in the kernel's table: free in ours, or held by an entry whose own
 * close_direct has emptied it (EXITED), whose release is reported, and the
 * slot freed here, only after the releases above it (LIFO). The kernel may
 * give it away in between; rsc__direct_own then hands it to the newcomer and
 * that report leaves it alone (release_slot).
 */
bool rsc__direct_can_arrive(const struct rsc_loop *loop, int slot)
{
	const struct rsc__direct *d = loop->direct;
	const struct rsc__dslot *sl;
	const struct rsc__entry *e;
	int res;

	/* IORING_FILE_INDEX_ALLOC installs in the alloc range only (direct_setup). */
	if (!d || slot < 0 || (unsigned)slot >= d->alloc_n)
		return false;
	sl = &d->slots[slot];
	if (sl->state == DSLOT_FREE)
		return true;
	if (sl->state != DSLOT_USED || !(e = rsc__entry_live(sl->owner)) ||
	    e->state != RSC_EXITED || e->fd_kind != RSC__FD_DIRECT)
		return false;
	res = e->value == slot ? e->close_res : e->has_value2 && e->value2 == slot ? e->close_res2 : 1;
	return res == 0 || res == -EBADF;
}

int rsc_loop_direct_used(const struct rsc_loop *loop)
{
	RSC__CHECK_ARG(loop, "rsc_loop_direct_used: loop is NULL");
	if (!loop->direct) {
		rsc__set_last_error("rsc_loop_direct_used: the loop has no direct table (rsc_loop_set_direct)");
		return -ENXIO;
	}
	return (int)loop->direct->used;
}

/*
 * The kernel's own view of the table: the "UserFiles:" section of
 * /proc/self/fdinfo/<ring fd> (io_uring/fdinfo.c), a count line and then
 * "%5u: <path>" for each slot in use. The kernel leaves the section out
 * when it cannot take the ring's lock (a submit in progress on another
 * thread), and versions differ in what comes after: read it tolerantly.
 * Returns the number of kernel slots read into @in_use (>= 0), or -EAGAIN
 * if the section was missing, or -errno.
 */
static int read_kernel_slots(struct rsc_loop *loop, unsigned char *in_use,
			     char (*paths)[256], unsigned size)
{
	char name[64], *line = NULL;
	bool in_section = false, seen = false;
	size_t cap = 0;
	FILE *f;
	int n = 0;

	snprintf(name, sizeof(name), "/proc/self/fdinfo/%d", loop->ring->ring_fd);
	f = fopen(name, "re");
	if (!f)
		return -errno;
	/* Whole lines: a path up to PATH_MAX split in two would end the section
	 * early (hiding the slots after it) or start a line of its own. */
	while (getline(&line, &cap, f) >= 0) {
		char *p = line, *end;
		unsigned long slot;

		if (!strncmp(line, "UserFiles:", 10)) {
			in_section = seen = true;
			continue;
		}
		if (!in_section)
			continue;
		while (*p == ' ' || *p == '\t')
			p++;
		slot = strtoul(p, &end, 10);
		if (end == p || *end != ':') {
			in_section = false; /* the next section began */
			continue;
		}
		if (slot >= size)
			continue;
		in_use[slot] = 1;
		p = end + 1;
		while (*p == ' ' || *p == '\t')
			p++;
		p[strcspn(p, "\n")] = '\0';
		snprintf(paths[slot], sizeof(paths[slot]), "%s", p);
		n++;
	}
	free(line);
	fclose(f);
	return seen ? n : -EAGAIN;
}

/*
 * A slot whose owner is releasing it, installing it or handing it over, or
 * an orphan the runtime is closing (a connection that came too late):
 * its close_direct may have emptied it in the kernel before the CQE that
 * frees it here is dispatched (an audit from a callback, or after a run
 * whose last submit completed inline). An EXITED owner's close has
 * completed, but the table frees the slot only when the release is reported,
 * after the releases above it (LIFO).
 */
static bool slot_leaving(const struct rsc__dslot *sl)
{
	const struct rsc__entry *e;

	if (sl->state == DSLOT_ORPHAN)
		return sl->closing; /* the runtime's own close of a late arrival */
	if (sl->state != DSLOT_USED ||
	    !(e = rsc__entry_live(sl->owner)))
		return false;
	return e->state == RSC_EXITING || e->state == RSC_EXITED || rsc__slot_move_in_flight(e);
}

/* A mismatch that lasts is one finding, however often it is audited. */
static bool already_found(const struct rsc_loop *loop, int slot, const char *expected)
{
	unsigned i;

	for (i = 0; i < loop->n_findings; i++) {
		const struct rsc_finding *f = loop->findings[i];

		if (f->kind == RSC_FINDING_SLOT_MISMATCH && f->fd == slot &&
		    strncmp(f->expected, expected, sizeof(f->expected) - 1) == 0)
			return true;
	}
	return false;
}

int rsc_audit_slots(struct rsc_loop *loop)
{
	struct rsc__direct *d;
	unsigned char *in_use;
	char (*paths)[256];
	char expected[320];
	unsigned i;
	int ret, mismatches = 0;

	RSC__CHECK_ARG(loop, "rsc_audit_slots: loop is NULL");
	RSC__SAME_PROCESS(loop, "rsc_audit_slots");
	ret = rsc__direct_need(loop, "rsc_audit_slots");
	if (ret < 0)
		return ret;
	d = loop->direct;
	in_use = rsc__calloc(loop, d->size, 1);
	paths = rsc__calloc(loop, d->size, sizeof(*paths));
	if (!in_use || !paths) {
		free(in_use);
		free(paths);
		return -ENOMEM;
	}
	ret = read_kernel_slots(loop, in_use, paths, d->size);
	if (ret == -EAGAIN)
		rsc__set_last_error("rsc_audit_slots: the kernel left UserFiles out of the ring's fdinfo (ring busy): try again");
	else if (ret < 0)
		rsc__set_last_error("rsc_audit_slots: cannot read the ring's fdinfo: %s",
				    rsc_strerror(ret));
	for (i = 0; ret >= 0 && i < d->size; i++) {
		struct rsc__dslot *sl = &d->slots[i];
		bool ours = sl->state == DSLOT_USED || sl->state == DSLOT_ORPHAN;

		/* RESERVED: a chain step in flight may fill it at any moment. */
		if (sl->state == DSLOT_RESERVED || ours == (bool)in_use[i])
			continue;
		if (ours && slot_leaving(sl))
			continue; /* its close may have run, its CQE not dispatched yet */
		if (!ours && d->pending && i < d->alloc_n)
			continue; /* a kernel-allocated acquire whose CQE is not in yet */
		mismatches++;
		describe_owner(sl);
		if (ours)
			snprintf(expected, sizeof(expected),
				 "in use (entry %s in scope '%s'), but the kernel's table has it empty",
				 sl->what, sl->scope);
		else
			snprintf(expected, sizeof(expected),
				 "free, but the kernel's table holds %s there: acquired outside the runtime, or leaked",
				 paths[i]);
		if (!already_found(loop, (int)i, expected))
			rsc__audit_add_finding(loop, RSC_FINDING_SLOT_MISMATCH, (int)i,
					       ours ? sl->what : paths[i], ours ? sl->scope : "",
					       expected);
	}
	free(in_use);
	free(paths);
	return ret < 0 ? ret : mismatches;
}
