/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ringscope.h"
#include "model.h"

/*
 * The ledger keeps a number until its close has run (rsc_adopt(3)). A close
 * linked behind an fsync (RSC_FSYNC_ON_RELEASE) runs in an io-wq worker,
 * after the enter that submitted it returned. The soak keeps a duplicate of
 * each such entry's descriptor from its enter on: while the entry's number
 * still names that same open file (kcmp(2): no other open of the path can
 * pass for it), the ledger must name an owner, or a second rsc_adopt of the
 * number would make two.
 */

#define LW_END_SCAN 4096 /* numbers the end looks at: beyond any the soak reaches */

static bool no_kcmp; /* a kernel without kcmp(2) (CONFIG_KCMP): no check */

static int same_file(int a, int b)
{
	pid_t me = getpid();

	return (int)syscall(SYS_kcmp, me, me, KCMP_FILE, a, b);
}

/* Entry @i entered with descriptor @fd. */
void lw_entered(struct prog *p, int i, int fd)
{
	struct pentry *e = &p->en[i];
	int d;

	e->lw_fd = fd; /* every entry's number: fork.c checks the child closes it */
	if (e->kind != K_FILE || !e->multi_release)
		return;
	/* The full audit would rightly call the duplicate a leak of every scope
	 * that opened before it and unwinds while it lives. */
	if (no_kcmp || p->audit_full || e->lw_dup)
		return;
	/* The application's ring: the ledger lets go when the close is prepared (rsc_adopt(3)). */
	if (p->shared)
		return;
	d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (d < 0)
		return; /* EMFILE under a planted limit: this one goes unwatched */
	e->lw_dup = d + 1;
}

/*
 * rsc_adopt of @fd, new from the kernel, said -EEXIST: right while a
 * release whose close runs in io-wq (behind an fsync, or a shutdown: every
 * RSC_SHUTDOWN_ON_RELEASE connection) had the number. The close gave the
 * number back, but until the loop reaps it the ledger cannot tell the new
 * descriptor from the old one, and keeps the number (rsc_adopt(3): the
 * safe side, never two owners). So the ledger names an owner; that the
 * hold ends is lw_end's check.
 */
bool lw_number_still_held(struct prog *p, int fd)
{
	char buf[512];

	if (rsc_audit_describe_fd(fd, buf, sizeof(buf)) < 0)
		return false;
	p->lw_late_refusals++;
	return true;
}

static void drop(struct pentry *e)
{
	close(e->lw_dup - 1);
	e->lw_dup = 0;
}

/* After each op: a watched number that still names its file has an owner. */
void lw_check(struct prog *p, struct prog_stats *st)
{
	char buf[512];
	int i, r;

	for (i = 0; i < p->n_en; i++) {
		struct pentry *e = &p->en[i];

		if (e->lw_released) {
			/* Released: its close has run. A number closed is no one's, not this
			 * entry's still (a new descriptor's owner would be named instead). */
			e->lw_released = false;
			if (e->fd_kind && !e->detached && e->lw_fd > 2 && fcntl(e->lw_fd, F_GETFD) < 0 &&
			    rsc_audit_describe_fd(e->lw_fd, buf, sizeof(buf)) >= 0)
				violation(p, "fd %d of entry %d ('%s') of '%s' was released and is closed, "
					  "but the ledger still names an owner: %s", e->lw_fd, e->seq,
					  e->name, p->sc[e->scope].name, buf);
		}
		if (!e->lw_dup)
			continue;
		if (e->n_released || e->detached || e->taken_over) {
			drop(e); /* released: its close has run; detached: the caller's now */
			continue;
		}
		r = same_file(e->lw_dup - 1, e->lw_fd);
		if (r < 0 && (errno == ENOSYS || errno == EPERM)) {
			no_kcmp = true;
			drop(e);
			continue;
		}
		if (r != 0)
			continue; /* the number is closed, or is another file's now */
		if (rsc_entry_state(e->h) == RSC_EXITING)
			st->closes_behind_checked++;
		r = rsc_audit_describe_fd(e->lw_fd, buf, sizeof(buf));
		if (r == -ENOENT)
			violation(p, "fd %d of entry %d ('%s') of '%s' still names the file it opened "
				  "(state %d: its close behind an fsync has not run), but the ledger names "
				  "no owner: a second rsc_adopt of it would be a second owner",
				  e->lw_fd, e->seq, e->name, p->sc[e->scope].name, rsc_entry_state(e->h));
	}
}

/* The end: every duplicate closed before the descriptors are counted. */
void lw_end(struct prog *p, struct prog_stats *st)
{
	int i;

	st->adopts_refused_late += p->lw_late_refusals;
	for (i = 0; i < p->n_en; i++)
		if (p->en[i].lw_dup)
			drop(&p->en[i]);
	/* Every loop of the program is closed: no number is anyone's any more. */
	for (i = 0; i < LW_END_SCAN; i++) {
		char buf[512];

		if (rsc_audit_describe_fd(i, buf, sizeof(buf)) >= 0) {
			violation(p, "at the end, with the program's loops closed, the ledger still names an owner of fd %d: %s",
				  i, buf);
			break;
		}
	}
}
