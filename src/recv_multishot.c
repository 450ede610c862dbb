/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/*
 * Multishot receive into runtime-provided buffers. One IORING_OP_RECV with
 * IORING_RECV_MULTISHOT (Linux 6.0, io_uring/net.c) stays armed on the
 * socket: each receive posts a CQE with IORING_CQE_F_MORE and the buffer it
 * filled, taken from the loop's provided-buffer ring (IORING_REGISTER_PBUF_RING,
 * Linux 5.19, io_uring/kbuf.c). Against a recv per request it saves the SQE,
 * and the kernel's poll arm and disarm when no data is waiting yet.
 * Edges:
 * - The kernel ends the op (a CQE without F_MORE) on EOF (res 0), on an error,
 *   on a cancel, and when the ring has no buffer left (-ENOBUFS): the last
 *   one the runtime arms again while the entry stays, since every buffer is
 *   back in the ring once the callbacks of the CQEs already posted have run.
 *   A data CQE may also come without F_MORE (the kernel could not post more,
 *   e.g. its CQ overflowed): delivered, then armed again.
 * - A buffer goes back to the ring's tail only after its callback: the
 *   kernel never fills one the caller is still reading.
 * - liburing 2.3 has no io_uring_setup_buf_ring(): the ring is mmap()ed here
 *   (page-aligned, as IORING_REGISTER_PBUF_RING requires) and registered.
 * - An application sharing its ring (rsc_loop_new_from_ring) may use buffer
 *   groups of its own: the group id is the first free one from RSC__BGID
 *   (registering a group in use is -EEXIST).
 */

#define RSC__BGID 0x5253U /* "RS"; the next free one on -EEXIST */
#define RSC__RECV_BUFFERS_MAX 32768U /* the kernel's cap on a buffer ring */
#define RSC__RECV_BUFFER_SIZE_MAX (1U << 20)

struct rsc__bufring {
	struct io_uring_buf_ring *br; /* the ring the kernel reads, mmap()ed */
	size_t br_bytes;
	char *mem;		      /* count * size bytes of buffers, mmap()ed */
	size_t mem_bytes;
	unsigned count, size;
	uint16_t bgid;
	unsigned n_active; /* multishot receives in flight */
};

static void bufring_free(struct rsc_loop *loop, struct rsc__bufring *b, bool unregister)
{
	if (!b)
		return;
	/* The kernel pins the ring's pages until it lets the group go. */
	if (unregister)
		(void)io_uring_unregister_buf_ring(loop->ring, b->bgid);
	if (b->br)
		munmap(b->br, b->br_bytes);
	if (b->mem)
		munmap(b->mem, b->mem_bytes);
	free(b);
}

void rsc__recv_buffers_free(struct rsc_loop *loop, bool ring_alive)
{
	bufring_free(loop, loop->bufring, ring_alive);
	loop->bufring = NULL;
}

static bool power_of_two(unsigned n)
{
	return n && !(n & (n - 1));
}

/*
 * The buffers: anonymous pages, zeroed (a checker that cannot see the
 * kernel's writes, valgrind, reads them as defined), and memory only once
 * the kernel fills them: the largest ring the page allows (32 GiB) is
 * address space until used, not an allocation the heap (or a sanitizer's)
 * refuses. An alloc fault rule counts it as an allocation.
 */
static char *map_buffers(struct rsc_loop *loop, size_t bytes)
{
	void *p;

	if (rsc__fault(loop, RSC__F_ALLOC))
		return NULL;
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* Register @count buffers of @size bytes with the ring; 0 or -errno (and why). */
static int bufring_setup(struct rsc_loop *loop, unsigned count, unsigned size)
{
	struct io_uring_buf_reg reg;
	struct rsc__bufring *b;
	long page = sysconf(_SC_PAGESIZE);
	unsigned i, tries;
	int ret = -EEXIST;

	b = rsc__calloc(loop, 1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->count = count;
	b->size = size;
	b->br_bytes = (size_t)count * sizeof(struct io_uring_buf);
	if (page > 0 && b->br_bytes % (size_t)page)
		b->br_bytes += (size_t)page - b->br_bytes % (size_t)page;
	b->br = mmap(NULL, b->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (b->br == MAP_FAILED) {
		b->br = NULL;
		bufring_free(loop, b, false);
		return -ENOMEM;
	}
	b->mem_bytes = (size_t)count * size;
	b->mem = map_buffers(loop, b->mem_bytes);
	if (!b->mem) {
		bufring_free(loop, b, false);
		return -ENOMEM;
	}
	io_uring_buf_ring_init(b->br);
	for (tries = 0; tries < 64 && ret == -EEXIST; tries++) {
		memset(&reg, 0, sizeof(reg));
		reg.ring_addr = (unsigned long)b->br;
		reg.ring_entries = count;
		reg.bgid = (uint16_t)(RSC__BGID + tries);
		ret = io_uring_register_buf_ring(loop->ring, &reg, 0);
		b->bgid = reg.bgid;
	}
	if (ret < 0) {
		rsc__set_last_error("cannot register a ring of %u receive buffers: io_uring_register_buf_ring: %s%s",
				    count, rsc_strerror(ret),
				    ret == -EINVAL ? " (provided-buffer rings need Linux 5.19)" :
				    ret == -EEXIST ? " (the ring's buffer groups from 0x5253 are taken)" : "");
		bufring_free(loop, b, false);
		return ret == -EINVAL ? -EOPNOTSUPP : ret;
	}
	for (i = 0; i < count; i++)
		io_uring_buf_ring_add(b->br, b->mem + (size_t)i * size, size, (unsigned short)i,
				      io_uring_buf_ring_mask(count), (int)i);
	io_uring_buf_ring_advance(b->br, (int)count);
	loop->bufring = b;
	return 0;
}

/* The new buffers first, in a group of their own: refused, the loop keeps the old ones. */
static int replace_buffers(struct rsc_loop *loop, unsigned count, unsigned size)
{
	struct rsc__bufring *old = loop->bufring;
	int ret;

	loop->bufring = NULL;
	if (count && (ret = bufring_setup(loop, count, size)) < 0) {
		loop->bufring = old;
		return ret;
	}
	bufring_free(loop, old, true);
	return 0;
}

int rsc_loop_set_recv_buffers(struct rsc_loop *loop, unsigned count, unsigned size)
{
	int ret;

	RSC__CHECK_ARG(loop, "rsc_loop_set_recv_buffers: loop is NULL");
	RSC__SAME_PROCESS(loop, "rsc_loop_set_recv_buffers");
	RSC__CHECK_ARG(!count || (power_of_two(count) && count <= RSC__RECV_BUFFERS_MAX),
		       "rsc_loop_set_recv_buffers: %u buffers: a power of two up to %u", count,
		       RSC__RECV_BUFFERS_MAX);
	RSC__CHECK_ARG(!count || (size && size <= RSC__RECV_BUFFER_SIZE_MAX),
		       "rsc_loop_set_recv_buffers: buffers of %u bytes: 1 to %u", size,
		       RSC__RECV_BUFFER_SIZE_MAX);
	ret = rsc__check_not_in_callback(loop, "rsc_loop_set_recv_buffers");
	if (ret < 0)
		return ret;
	if (loop->bufring && loop->bufring->n_active) {
		rsc__set_last_error("rsc_loop_set_recv_buffers: %u multishot receives are in flight",
				    loop->bufring->n_active);
		return -EBUSY;
	}
	return replace_buffers(loop, count, size);
}

static bool is_multishot(const struct rsc_op *op);

bool rsc__recv_multishot_active(const struct rsc__entry *e)
{
	const struct rsc_op *op;

	RSC__LIST_FOR_EACH(op, &e->io_ops, io_node)
		if (is_multishot(op))
			return true;
	return false;
}

/* The last callback: the op ended for good. */
static void final_cb(struct rsc_loop *loop, struct rsc_op *op, int res)
{
	if (rsc__cb_enter(loop))
		op->io_cb(rsc__eh(op->entry), res, NULL, op->io_data);
	rsc__cb_leave(loop);
}

static int arm(struct rsc__entry *e, rsc_io_cb cb, void *data);

static void recv_done(struct rsc_loop *loop, struct rsc_op *op, int res, unsigned cqe_flags)
{
	struct rsc__bufring *b = loop->bufring;
	struct rsc__entry *e = op->entry;
	uint64_t h = e->h;
	bool last = !(cqe_flags & IORING_CQE_F_MORE);
	bool stays;

	if (cqe_flags & IORING_CQE_F_BUFFER) {
		unsigned bid = cqe_flags >> IORING_CQE_BUFFER_SHIFT;
		char *buf = b->mem + (size_t)bid * b->size;

		assert(bid < b->count);
		if (res > 0) {
			if (rsc__cb_enter(loop))
				op->io_cb(rsc__eh(e), res, buf, op->io_data);
			rsc__cb_leave(loop);
		}
		/* The caller is done with it: back to the kernel. */
		io_uring_buf_ring_add(b->br, buf, b->size, (unsigned short)bid,
				      io_uring_buf_ring_mask(b->count), 0);
		io_uring_buf_ring_advance(b->br, 1);
	}
	if (!last)
		return;
	/* Its last CQE: the entry stops tracking it (the op is freed after). */
	res = rsc__real_errno(res, e->flags & RSC__E_IO_CANCELLED);
	b->n_active--;
	stays = e->state == RSC_ENTERED && !op->io_stopped &&
		!(e->flags & (RSC__E_IO_CANCELLED | RSC__E_RELEASE_REQ));
	if (res > 0 || res == -ENOBUFS) {
		/* Ended by the kernel, not by the peer: again, while the entry stays. */
		int ret = stays ? arm(e, op->io_cb, op->io_data) : -ECANCELED;

		if (ret == 0) {
			/* The same receive for a graceful close's count (graceful.c): not
			 * drained. arm() put the new op first. */
			RSC__LIST_ITEM(e->io_ops.next, struct rsc_op, io_node)->grace_seq = op->grace_seq;
			loop->counters[RSC_CTR_RECV_REARMS]++;
		}
		rsc__io_unlink(op);
		if (ret < 0)
			final_cb(loop, op, ret);
	} else {
		rsc__io_unlink(op);
		final_cb(loop, op, res);
	}
	rsc__io_settled(h);
}

static bool is_multishot(const struct rsc_op *op)
{
	return op->complete == recv_done;
}

/* Any receive, multishot or rsc_recv: beside one, which gets which bytes is chance. */
static bool recv_in_flight(const struct rsc__entry *e)
{
	const struct rsc_op *op;

	RSC__LIST_FOR_EACH(op, &e->io_ops, io_node)
		if (op->opcode == IORING_OP_RECV)
			return true;
	return false;
}

static int arm(struct rsc__entry *e, rsc_io_cb cb, void *data)
{
	struct rsc_loop *loop = e->scope->loop;
	struct io_uring_sqe *sqe;
	struct rsc_op *op;
	int ret = rsc__io_op(e, &sqe, &op);

	if (ret < 0)
		return ret;
	io_uring_prep_recv(sqe, e->value, NULL, 0, 0);
	sqe->ioprio |= IORING_RECV_MULTISHOT;
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = loop->bufring->bgid;
	/* A direct entry's value is a slot of the loop's table (direct.c). */
	if (e->fd_kind == RSC__FD_DIRECT)
		sqe->flags |= IOSQE_FIXED_FILE;
	op->opcode = IORING_OP_RECV;
	op->complete = recv_done;
	op->io_cb = cb;
	op->io_buf = NULL;
	op->io_data = data;
	loop->bufring->n_active++;
	return 0;
}

int rsc_recv_multishot(struct rsc_entry *h, unsigned flags, rsc_io_cb cb, void *data)
{
	struct rsc__entry *e;
	struct rsc_loop *loop;
	int ret = rsc__io_check_tracked(h, &e, true, "rsc_recv_multishot");

	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(cb, "rsc_recv_multishot: cb is NULL (it hands the buffers over)");
	RSC__CHECK_ARG(!flags, "rsc_recv_multishot: unknown flags 0x%x", flags);
	loop = e->scope->loop;
	/* No probe sees IORING_RECV_MULTISHOT: IORING_OP_SEND_ZC came in the same release (6.0). */
	if (!rsc__opcode_supported(loop, IORING_OP_SEND_ZC) ||
	    rsc__fault_missing(&loop->faults, RSC__MISSING_RECV_MULTISHOT)) {
		rsc__set_last_error("rsc_recv_multishot: the kernel lacks IORING_RECV_MULTISHOT (Linux 6.0); use rsc_recv");
		return -EOPNOTSUPP;
	}
	if (recv_in_flight(e)) {
		rsc__set_last_error("rsc_recv_multishot: entry '%s' has a %s in flight already",
				    e->mgr->name, rsc__recv_multishot_active(e) ?
				    "multishot receive" : "receive (rsc_recv)");
		return -EBUSY;
	}
	if (!loop->bufring) {
		ret = bufring_setup(loop, RSC_RECV_BUFFERS_DEFAULT, RSC_RECV_BUFFER_SIZE_DEFAULT);
		if (ret < 0)
			return ret;
	}
	return arm(e, cb, data);
}
