/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) /* rdtsc, and unsigned __int128 for the scaling */
#include <x86intrin.h>
#define HAVE_TSC 1
#endif

#include "internal.h"

/*
 * The lifecycle as Chrome trace-event JSON (the JSON Object Format, which
 * Perfetto and chrome://tracing both read): each entry an async slice
 * (b/e, id = its handle) from the submit of its acquire to the completion of
 * its release, with instants (n) for entered, release started and failed;
 * each scope an async slice from open to close; a counter (C) per submit.
 * Events are buffered; every flush writes them, then the closing "]}",
 * over the previous closing "]}" in one pwrite, so the file on disk is
 * always a complete document up to its last flush.
 */

#define BUF_CAP	  (1024U * 1024U)
#define PREALLOC  ((off_t)4 * 1024 * 1024) /* blocks reserved ahead of the writes */
#define EVENT_MAX 16384U /* an event never grows past this: strings are capped */
/* Caps on a string's JSON text: a name, a path (PATH_MAX: whole, unless its
 * escapes make it longer), an error's text (a path and its words). */
#define NAME_MAX_OUT 200U
#define PATH_MAX_OUT 4096U
#define TEXT_MAX_OUT 6144U
static const char TAIL[] = "\n]}\n";
#define TAIL_LEN (sizeof(TAIL) - 1)

/*
 * The trace's clock: CLOCK_MONOTONIC, read through the TSC between readings
 * of the real thing. clock_gettime() is ~21 ns in this VM's vDSO, rdtsc ~9;
 * four readings a pair made ~6% of the trace's cost (bench/README.md). Only
 * where the kernel itself keeps time with the TSC (its clocksource is "tsc",
 * so the TSC is constant and synchronized across CPUs); otherwise every
 * reading is clock_gettime(). The scale (ns per tick) is measured against
 * CLOCK_MONOTONIC over the whole trace so far, and the TSC is re-anchored to
 * CLOCK_MONOTONIC every millisecond: an extrapolation is off by a few ns.
 */
#define CLK_CAL_NS    1000000ULL /* measure the scale over at least this */
#define CLK_ANCHOR_NS 1000000ULL /* re-anchor after this much time */

struct trace_clock {
	bool tsc;	     /* the TSC may be read */
	bool calibrated;     /* mult is known */
	uint64_t c0, t0;     /* the first reading: TSC, ns */
	uint64_t ca, ta;     /* the last anchor */
	uint64_t mult;	     /* ns per tick, 32.32 fixed point */
	uint64_t max_dt;     /* ticks in CLK_ANCHOR_NS */
};

struct rsc__trace_json {
	struct trace_clock clk;
	uint64_t last_ts;      /* timestamps never go back on the track */
	int fd;
	int err;	       /* first write error: tracing stops there */
	bool told;	       /* err was returned by rsc_loop_trace_flush() */
	off_t pos;	       /* where the next flush writes (the old tail) */
	size_t len;	       /* bytes of events buffered */
	unsigned pid;
	unsigned open_entries; /* entries entered and not yet released, in this trace */
	off_t prealloc_end;    /* blocks reserved (past EOF) up to here */
	bool no_prealloc;      /* the file system cannot fallocate() */
	size_t head_len;
	char head[64];	       /* ,\n{"ph":"?","pid":P,"tid":L,"ts": (ph patched per event) */
	/* Each entry's ,"cat":"entry","name":"file","id":"0x.." formatted once, by handle. */
	struct {
		uint64_t h;
		unsigned len;
		char text[84];
	} tags[256];
	/* The last manager name's ,"cat":"entry","name":"file","id":, keyed by
	 * the name's bytes: a manager struct on the stack, or a name buffer,
	 * may be reused for another name at the same address. */
	struct {
		char name[24];
		unsigned len;
		char text[60];
	} mgr_tag;
	/* The last scope's ,"args":{"scope_id":"0x..", for its entries' b events. */
	struct {
		uint64_t h;
		unsigned len;
		char text[52];
	} scope_tag;
	/* The last acquire opcode's ,"op":"name"}} */
	unsigned op_code;
	unsigned op_len;
	char op_text[52];
	uint64_t ts_sec;       /* the second whose digits are in ts_prefix */
	uint64_t ts_sec_ns;    /* ts_sec * 10^9 */
	size_t ts_prefix_len;
	char ts_prefix[24];    /* its microseconds' leading digits */
	char buf[BUF_CAP];
};

/*
 * The hot path formats by hand (memcpy and digit loops, no printf): the
 * trace costs what it writes, and the floor is 10% at N = 64 (bench/).
 */
/* Unchecked: begin() keeps EVENT_MAX free, and no event is longer. */
static inline __attribute__((always_inline)) void
put_mem(struct rsc__trace_json *tj, const char *p, size_t n)
{
	char *d = tj->buf + tj->len;

	assert(n <= BUF_CAP - TAIL_LEN - tj->len);
	if (__builtin_constant_p(n) || n > 32) {
		memcpy(d, p, n);
	} else if (n >= 16) { /* two overlapping copies: reads stay in p[0, n) */
		memcpy(d, p, 16);
		memcpy(d + n - 16, p + n - 16, 16);
	} else if (n >= 8) {
		memcpy(d, p, 8);
		memcpy(d + n - 8, p + n - 8, 8);
	} else if (n >= 4) {
		memcpy(d, p, 4);
		memcpy(d + n - 4, p + n - 4, 4);
	} else if (n) {
		d[0] = p[0];
		d[n / 2] = p[n / 2];
		d[n - 1] = p[n - 1];
	}
	tj->len += n;
}

/*
 * Copy @n (<= @max, a constant) bytes of @p as a fixed-size copy of @max:
 * a few moves instead of a call; the bytes past @n are overwritten next.
 */
#define PUT_UPTO(tj, p, n, max)                                  \
	do {                                                     \
		memcpy((tj)->buf + (tj)->len, (p), (max));       \
		(tj)->len += (n);                                \
	} while (0)

#define PUT_LIT(tj, lit) put_mem((tj), (lit), sizeof(lit) - 1)

static const char digits2[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

static const uint64_t pow10_u64[20] = {
	1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
	100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL,
	1000000000000ULL, 10000000000000ULL, 100000000000000ULL,
	1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL,
	1000000000000000000ULL, 10000000000000000000ULL,
};

/* In place, backwards from its last digit, two digits per division. */
static void put_u64(struct rsc__trace_json *tj, uint64_t v)
{
	/* digits: from the bit length (log10(2) ~ 1233/4096), then one compare */
	unsigned t = ((64U - (unsigned)__builtin_clzll(v | 1)) * 1233U) >> 12;
	unsigned n = t + (t < 20 && v >= pow10_u64[t]);
	char *p;

	if (!n)
		n = 1;
	p = tj->buf + tj->len + n;
	tj->len += n;
	while (v >= 100) {
		unsigned r = (unsigned)(v % 100) * 2;

		v /= 100;
		*--p = digits2[r + 1];
		*--p = digits2[r];
	}
	if (v >= 10) {
		*--p = digits2[v * 2 + 1];
		*--p = digits2[v * 2];
	} else {
		*--p = (char)('0' + v);
	}
}

static inline void put_int(struct rsc__trace_json *tj, int v)
{
	if ((unsigned)v < 10) { /* a result of 0, a low descriptor */
		tj->buf[tj->len++] = (char)('0' + v);
	} else if (v < 0) {
		PUT_LIT(tj, "-");
		put_u64(tj, (uint64_t)-(int64_t)v);
	} else {
		put_u64(tj, (uint64_t)v);
	}
}

/* Nanoseconds as microseconds with three decimals: 1234.567 */
/* Two digits of @v (< 100) at @p. */
static inline void two_digits(char *p, unsigned v)
{
	p[0] = digits2[v * 2];
	p[1] = digits2[v * 2 + 1];
}

static void put_usec(struct rsc__trace_json *tj, uint64_t ns)
{
	unsigned frac;
	char *p;

	if (ns < 4000000000ULL) { /* under 4 s: 32-bit arithmetic */
		unsigned n32 = (unsigned)ns, us = n32 / 1000;

		frac = n32 % 1000;
		if (us < 10000) { /* up to 4 digits: the common latencies */
			p = tj->buf + tj->len;
			if (us >= 1000) {
				two_digits(p, us / 100);
				two_digits(p + 2, us % 100);
				p += 4;
			} else if (us >= 100) {
				p[0] = (char)('0' + us / 100);
				two_digits(p + 1, us % 100);
				p += 3;
			} else if (us >= 10) {
				two_digits(p, us);
				p += 2;
			} else {
				*p++ = (char)('0' + us);
			}
			tj->len = (size_t)(p - tj->buf);
		} else {
			put_u64(tj, us);
		}
	} else {
		frac = (unsigned)(ns % 1000);
		put_u64(tj, ns / 1000);
	}
	p = tj->buf + tj->len;
	p[0] = '.';
	p[1] = (char)('0' + frac / 100);
	two_digits(p + 2, frac % 100);
	tj->len += 4;
}

/* The digits of the second @ns is in, for the events in it. */
static void __attribute__((noinline)) new_second(struct rsc__trace_json *tj, uint64_t ns)
{
	size_t len = tj->len;
	uint64_t sec = ns / 1000000000ULL;

	tj->ts_sec = sec;
	tj->ts_sec_ns = sec * 1000000000ULL;
	put_u64(tj, sec); /* borrow the buffer to format it */
	tj->ts_prefix_len = tj->len - len;
	memcpy(tj->ts_prefix, tj->buf + len, tj->ts_prefix_len);
	tj->len = len;
}

/*
 * An event's timestamp, CLOCK_MONOTONIC in microseconds with three decimals.
 * The leading digits change once a second: they are formatted then, and
 * each event writes only its last six digits and the decimals.
 */
static inline __attribute__((always_inline)) void
put_ts(struct rsc__trace_json *tj, uint64_t ns)
{
	unsigned sub, us, frac;
	char *p;

	/* Within the second of the last event: 32-bit arithmetic only. */
	if (__builtin_expect(ns - tj->ts_sec_ns >= 1000000000ULL || !tj->ts_prefix_len, 0))
		new_second(tj, ns);
	sub = (unsigned)(ns - tj->ts_sec_ns);
	us = sub / 1000;
	frac = sub % 1000;
	PUT_UPTO(tj, tj->ts_prefix, tj->ts_prefix_len, sizeof(tj->ts_prefix));
	p = tj->buf + tj->len;
	two_digits(p, us / 10000);
	two_digits(p + 2, us / 100 % 100);
	two_digits(p + 4, us % 100);
	p[6] = '.';
	p[7] = (char)('0' + frac / 100);
	two_digits(p + 8, frac % 100);
	tj->len += 10;
}

static const char hex2[513] =
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
	"404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
	"606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
	"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	"c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
	"e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

/* "0x1f": an id (a handle: its generation, then its slot) */
static void put_id(struct rsc__trace_json *tj, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	unsigned n = v ? (unsigned)(67 - __builtin_clzll(v)) / 4 : 1; /* hex digits */
	char *p = tj->buf + tj->len, *q = p + 3 + n; /* q: past the last digit */

	p[0] = '"';
	p[1] = '0';
	p[2] = 'x';
	p[3 + n] = '"';
	tj->len += 4 + n;
	for (; n >= 2; n -= 2, v >>= 8) { /* two digits a step */
		q -= 2;
		memcpy(q, hex2 + (v & 255) * 2, 2);
	}
	if (n)
		q[-1] = hex[v & 15];
}

static void put_esc(struct rsc__trace_json *tj, const char *str, size_t max);

/*
 * ,"cat":"entry","name":"file","id":"0x100000003" for @e: its b formats it, its instants
 * and its e copy it (a direct-mapped cache by handle; live entries rarely
 * collide, since their slots are consecutive).
 */
static void __attribute__((noinline))
entry_name_new(struct rsc__trace_json *tj, const struct rsc__entry *e)
{
	unsigned k = (unsigned)(e->h & 255);
	size_t start = tj->len, len;

	/* ,"cat":"entry","name":"file","id": by manager name (one at a time, mostly) */
	if (tj->mgr_tag.len && strcmp(tj->mgr_tag.name, e->mgr->name) == 0) {
		PUT_UPTO(tj, tj->mgr_tag.text, tj->mgr_tag.len, sizeof(tj->mgr_tag.text));
	} else {
		PUT_LIT(tj, ",\"cat\":\"entry\",\"name\":\"");
		put_esc(tj, e->mgr->name, NAME_MAX_OUT);
		PUT_LIT(tj, "\",\"id\":");
		len = tj->len - start;
		if (len <= sizeof(tj->mgr_tag.text) &&
		    strlen(e->mgr->name) < sizeof(tj->mgr_tag.name)) {
			strcpy(tj->mgr_tag.name, e->mgr->name);
			tj->mgr_tag.len = (unsigned)len;
			memcpy(tj->mgr_tag.text, tj->buf + start, len);
		}
	}
	put_id(tj, e->h);
	len = tj->len - start;
	if (len <= sizeof(tj->tags[k].text)) {
		tj->tags[k].h = e->h;
		tj->tags[k].len = (unsigned)len;
		memcpy(tj->tags[k].text, tj->buf + start, len);
	}
}

static inline __attribute__((always_inline)) void
entry_name(struct rsc__trace_json *tj, const struct rsc__entry *e)
{
	unsigned k = (unsigned)(e->h & 255);

	if (__builtin_expect(tj->tags[k].h == e->h, 1))
		PUT_UPTO(tj, tj->tags[k].text, tj->tags[k].len, sizeof(tj->tags[k].text));
	else
		entry_name_new(tj, e);
}

static void put(struct rsc__trace_json *tj, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct rsc__trace_json *tj, const char *fmt, ...)
{
	size_t room = BUF_CAP - TAIL_LEN - tj->len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tj->buf + tj->len, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		tj->len += (size_t)n < room ? (size_t)n : room - 1;
}

/* Bytes a JSON string may hold as they are (NUL ends the string: not plain). */
static const bool plain[256] = {
	[0x20] = 1, [0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7e] = 1,
};

/* @s escaped for a JSON string, at most @max bytes; bad UTF-8 becomes U+FFFD,
 * and every control (C0, DEL, C1) is \uXXXX. */
static void put_esc(struct rsc__trace_json *tj, const char *str, size_t max)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	size_t out = 0, n;

	/* Names and paths are plain ASCII: copy them whole. */
	for (n = 0; n < max && plain[s[n]]; n++)
		;
	if (!s[n] || n == max) {
		put_mem(tj, (const char *)s, n);
		return;
	}
	while (*s && out + 6 <= max) {
		if (*s == '"' || *s == '\\') {
			put(tj, "\\%c", *s++);
			out += 2;
		} else if (*s < 0x20 || *s == 0x7f) {
			put(tj, "\\u%04x", *s++);
			out += 6;
		} else if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] < 0xa0) {
			/* Valid JSON raw, but a C1 control (U+009B is CSI) drives the
			 * terminal that shows the file: escaped, as the page promises. */
			put(tj, "\\u%04x", s[1]);
			s += 2;
			out += 6;
		} else if ((n = rsc__utf8_len(s)) == 0) {
			put(tj, "\\ufffd");
			s++;
			out += 6;
		} else {
			put(tj, "%.*s", (int)n, (const char *)s);
			s += n;
			out += n;
		}
	}
}

/* ,"key":"value" and ,"key":1.234 with a literal key */
#define put_str(tj, key, val, max)                  \
	do {                                        \
		PUT_LIT(tj, ",\"" key "\":\"");      \
		put_esc(tj, val, max);              \
		PUT_LIT(tj, "\"");                   \
	} while (0)
/* A duration: @now - @then, 0 if the clock's re-anchoring put them the wrong way. */
#define put_us(tj, key, now, then)                              \
	do {                                                    \
		PUT_LIT(tj, ",\"" key "\":");                     \
		put_usec(tj, (now) > (then) ? (now) - (then) : 0); \
	} while (0)

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#ifdef HAVE_TSC
/* A CLOCK_MONOTONIC reading, and the TSC at about its moment: the anchor. */
static uint64_t clk_anchor(struct trace_clock *k)
{
	uint64_t a = __rdtsc(), t = mono_ns(), b = __rdtsc(), c = a + (b - a) / 2;

	if (!k->t0) {
		k->t0 = t;
		k->c0 = c;
	} else if (t - k->t0 >= CLK_CAL_NS && c > k->c0) {
		k->mult = (uint64_t)(((unsigned __int128)(t - k->t0) << 32) / (c - k->c0));
		if (k->mult) {
			k->max_dt = (uint64_t)(((unsigned __int128)CLK_ANCHOR_NS << 32) / k->mult);
			k->calibrated = true;
		}
	}
	k->ta = t;
	k->ca = c;
	return t;
}
#endif

/* Now, in CLOCK_MONOTONIC ns (see struct trace_clock). */
uint64_t rsc__tj_now(struct rsc__trace_json *tj)
{
#ifdef HAVE_TSC
	struct trace_clock *k = &tj->clk;

	if (__builtin_expect(k->calibrated, 1)) {
		uint64_t dt = __rdtsc() - k->ca; /* behind the anchor: wraps, re-anchors */

		if (dt < k->max_dt)
			return k->ta + (uint64_t)(((unsigned __int128)dt * k->mult) >> 32);
	}
	if (k->tsc)
		return clk_anchor(k);
#else
	(void)tj;
#endif
	return mono_ns();
}

/* The kernel keeps time with the TSC: it is constant and synchronized. */
static bool tsc_is_clocksource(void)
{
#ifdef HAVE_TSC
	char cs[16] = "";
	int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
		      O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, cs, sizeof(cs) - 1);
	close(fd);
	return n >= 3 && !strncmp(cs, "tsc\n", 4);
#else
	return false;
#endif
}

static int write_all(int fd, const char *p, size_t n, off_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/*
 * A short write (a full disk, RLIMIT_FSIZE) left part of the events over the
 * old tail: put the tail back where it was, whose blocks the file has, and cut
 * what follows, so the file stays the document of the last good write.
 */
static void restore_tail(struct rsc__trace_json *tj)
{
	if (tj->pos == 0) /* the header itself failed: no document to keep */
		(void)!ftruncate(tj->fd, 0);
	else if (write_all(tj->fd, TAIL, TAIL_LEN, tj->pos) == 0)
		(void)!ftruncate(tj->fd, tj->pos + (off_t)TAIL_LEN);
}

static int flush(struct rsc_loop *loop)
{
	struct rsc__trace_json *tj = loop->tj;
	int ret;

	if (tj->err)
		return tj->err;
	/* A callback forked, and the child's copy went on: the file is the
	 * parent's, and the event that wanted room is dropped (begin_cat). */
	if (rsc__loop_forked(loop))
		return -ECHILD;
	/*
	 * Reserve the file's blocks ahead, past its end (its size stays what was
	 * written): writes into reserved blocks skip ext4's delayed-allocation
	 * bookkeeping, about a third of what a write costs (bench/README.md).
	 * Closing the trace gives back what was not used.
	 */
	if (!tj->no_prealloc && tj->pos + (off_t)(tj->len + TAIL_LEN) > tj->prealloc_end) {
		off_t from = tj->prealloc_end > tj->pos ? tj->prealloc_end : tj->pos;

		if (fallocate(tj->fd, FALLOC_FL_KEEP_SIZE, from, PREALLOC) == 0)
			tj->prealloc_end = from + PREALLOC;
		else
			tj->no_prealloc = true; /* tmpfs-like or no support: write as is */
	}
	/* Events and the new tail in one write, over the old tail. */
	memcpy(tj->buf + tj->len, TAIL, TAIL_LEN);
	ret = write_all(tj->fd, tj->buf, tj->len + TAIL_LEN, tj->pos);
	if (ret < 0) {
		tj->err = ret; /* a full disk must not fail the program: stop tracing */
		loop->obs_flags &= ~RSC__OBS_TRACE;
		restore_tail(tj);
		return ret;
	}
	tj->pos += (off_t)tj->len;
	tj->len = 0;
	return 0;
}

/* Start an event: flush first if it might not fit. */
static inline __attribute__((always_inline)) struct rsc__trace_json *begin_cat(struct rsc_loop *loop, char ph,
					 const char *cat, size_t cat_len, uint64_t now)
{
	struct rsc__trace_json *tj = loop->tj;

	if (BUF_CAP - TAIL_LEN - tj->len < EVENT_MAX && flush(loop) < 0)
		return NULL;
	if (now < tj->last_ts) /* a re-anchored clock a few ns behind */
		now = tj->last_ts;
	tj->last_ts = now;
	/* ,\n{"ph":"?","pid":P,"tid":L,"ts": with this event's ph */
	memcpy(tj->buf + tj->len, tj->head, sizeof(tj->head));
	tj->buf[tj->len + 9] = ph;
	tj->len += tj->head_len;
	put_ts(tj, now);
	if (cat_len) {
		PUT_LIT(tj, ",\"cat\":\"");
		put_mem(tj, cat, cat_len);
		PUT_LIT(tj, "\"");
	}
	return tj;
}

/* Start an event of category @cat (a literal, or NULL). */
#define begin(loop, ph, cat, now) \
	begin_cat((loop), (ph), (cat) ? (cat) : "", (cat) ? sizeof(cat) - 1 : 0, (now))


static void put_errno_op(struct rsc__trace_json *tj, int res, unsigned opcode,
			 const char *op)
{
	put_str(tj, "errno", rsc_err_name(res), NAME_MAX_OUT);
	put_str(tj, "op", op ? op : rsc__opcode_name(opcode), NAME_MAX_OUT);
}

static void put_result(struct rsc__trace_json *tj, int res, unsigned opcode,
		       const char *op)
{
	PUT_LIT(tj, ",\"result\":");
	put_int(tj, res);
	if (res < 0)
		put_errno_op(tj, res, opcode, op);
}

/* "openat file 'in.dat': No such file or directory (ENOENT)" */
static void put_error(struct rsc__trace_json *tj, const struct rsc__entry *e,
		      int res, const char *op)
{
	char text[TEXT_MAX_OUT];

	snprintf(text, sizeof(text), "%s %s '%s': %s (%s)", op, e->mgr->name, e->detail,
		 rsc_strerror(res), rsc_err_name(res));
	put_str(tj, "error", text, TEXT_MAX_OUT);
}

static void put_chain(struct rsc__trace_json *tj, const char *key,
		      const struct rsc_error *err)
{
	char text[TEXT_MAX_OUT];

	if (!err)
		return;
	rsc__error_format_head(err, text, sizeof(text));
	put(tj, ",\"%s\":\"", key);
	put_esc(tj, text, TEXT_MAX_OUT);
	PUT_LIT(tj, "\"");
}

static void entry_begin(struct rsc_loop *loop, struct rsc__entry *e, uint64_t now,
			bool acquires)
{
	struct rsc__trace_json *tj = begin(loop, 'b', NULL, now);

	if (!tj)
		return;
	entry_name(tj, e);
	/* ,"args":{"scope_id":"0x..": its scope's siblings come in a row */
	if (tj->scope_tag.h != e->scope->h) {
		size_t start = tj->len;

		PUT_LIT(tj, ",\"args\":{\"scope_id\":");
		put_id(tj, e->scope->h);
		tj->scope_tag.h = e->scope->h;
		tj->scope_tag.len = (unsigned)(tj->len - start);
		memcpy(tj->scope_tag.text, tj->buf + start, tj->scope_tag.len);
	} else {
		PUT_UPTO(tj, tj->scope_tag.text, tj->scope_tag.len, sizeof(tj->scope_tag.text));
	}
	if (e->detail[0])
		put_str(tj, "detail", e->detail, PATH_MAX_OUT);
	if (!acquires) {
		PUT_LIT(tj, ",\"op\":\"none: entered at once\"}}");
	} else if (e->flags & RSC__E_DEFERRED) {
		/* Its SQE waits for what it builds on (a connect for its socket). */
		put_str(tj, "op", rsc__opcode_name(e->enter_opcode), NAME_MAX_OUT);
		PUT_LIT(tj, ",\"deferred\":true}}");
	} else if (tj->op_len && tj->op_code == e->enter_opcode) {
		PUT_UPTO(tj, tj->op_text, tj->op_len, sizeof(tj->op_text));
	} else {
		size_t start = tj->len, len;

		put_str(tj, "op", rsc__opcode_name(e->enter_opcode), NAME_MAX_OUT);
		PUT_LIT(tj, "}}");
		len = tj->len - start;
		if (len <= sizeof(tj->op_text)) {
			tj->op_code = e->enter_opcode;
			tj->op_len = (unsigned)len;
			memcpy(tj->op_text, tj->buf + start, len);
		}
	}
	e->obs_state |= RSC__OBS_BEGUN;
}

static void entry_end(struct rsc_loop *loop, struct rsc__entry *e, uint64_t now,
		      const char *why)
{
	struct rsc__trace_json *tj = begin(loop, 'e', NULL, now);

	if (!tj)
		return;
	entry_name(tj, e);
	PUT_LIT(tj, ",\"args\":{\"end\":\"");
	put_esc(tj, why, NAME_MAX_OUT);
	PUT_LIT(tj, "\"}}");
}

/*
 * An instant on @e's slice. It carries the slice's name, not its own:
 * Perfetto puts legacy async events on tracks keyed by name and id, so an
 * instant named otherwise would get a track of its own. What happened is
 * args.event: "entered", "release started", "failed".
 */
#define entry_instant(loop, e, now, what)                                       \
	entry_instant_((loop), (e), (now), ",\"args\":{\"event\":\"" what "\"", \
		       sizeof(",\"args\":{\"event\":\"" what "\"") - 1)

static inline __attribute__((always_inline)) void
entry_instant_(struct rsc_loop *loop, struct rsc__entry *e, uint64_t now,
	       const char *args, size_t len)
{
	struct rsc__trace_json *tj = begin(loop, 'n', NULL, now);

	if (!tj)
		return;
	entry_name(tj, e);
	put_mem(tj, args, len);
}

/* @e counts among the trace's open entries from now on (once). */
static void count_open(struct rsc__trace_json *tj, struct rsc__entry *e)
{
	if (!(e->obs_state & RSC__OBS_OPEN)) {
		e->obs_state |= RSC__OBS_OPEN;
		tj->open_entries++;
	}
}

/* @e is released or freed: no longer open, and nothing of it in the trace. */
static void forget_open(struct rsc_loop *loop, struct rsc__entry *e)
{
	if ((e->obs_state & RSC__OBS_OPEN) && loop->tj && loop->tj->open_entries)
		loop->tj->open_entries--;
	e->obs_state = 0;
}

static void entered(struct rsc_loop *loop, struct rsc__entry *e, uint64_t now)
{
	struct rsc__trace_json *tj;

	if (e->obs_state & RSC__OBS_BEFORE) {
		/* Begun in an earlier trace: no slice here, but open all the same. */
		if ((tj = loop->tj) && !tj->err)
			count_open(tj, e);
		return;
	}
	if (!(e->obs_state & RSC__OBS_BEGUN))
		entry_begin(loop, e, now, false); /* adopted, deferred, accepted */
	entry_instant(loop, e, now, "entered");
	if (!(tj = loop->tj) || tj->err)
		return;
	PUT_LIT(tj, ",\"fd\":");
	put_int(tj, e->value);
	if (e->obs_t_acquire)
		put_us(tj, "acquire_us", now, e->obs_t_acquire);
	PUT_LIT(tj, "}}");
	count_open(tj, e);
}

static void enter_failed(struct rsc_loop *loop, struct rsc__entry *e, uint64_t now)
{
	const char *op = rsc__entry_fail_op(e);
	struct rsc__trace_json *tj;
	int pass;

	if (!(e->obs_state & RSC__OBS_BEGUN))
		return;
	/* The same args on the instant (a marker) and on the slice's end. */
	for (pass = 0; pass < 2; pass++) {
		if (pass == 0)
			entry_instant(loop, e, now, "failed");
		else if ((tj = begin(loop, 'e', NULL, now))) {
			entry_name(tj, e);
			PUT_LIT(tj, ",\"args\":{\"end\":\"failed\"");
		}
		if (!(tj = loop->tj) || tj->err)
			return;
		put_result(tj, e->value, e->enter_opcode, op);
		put_error(tj, e, e->value, op);
		if (e->flags & RSC__E_CANCEL_SENT)
			put(tj, ",\"cancelled\":true");
		if (e->obs_t_acquire)
			put_us(tj, "acquire_us", now, e->obs_t_acquire);
		put(tj, "}}");
	}
	e->obs_state = 0;
}

static void release_started(struct rsc_loop *loop, struct rsc__entry *e,
			    uint64_t now)
{
	struct rsc__trace_json *tj;

	if (!(e->obs_state & RSC__OBS_BEGUN))
		return;
	entry_instant(loop, e, now, "release started");
	if (!(tj = loop->tj) || tj->err)
		return;
	if (e->flags & RSC__E_RELEASE_REQ)
		PUT_LIT(tj, ",\"early\":true");
	PUT_LIT(tj, "}}");
}

static void released(struct rsc_loop *loop, struct rsc__entry *e, uint64_t now)
{
	const struct rsc__scope *s = e->scope;
	bool early = e->flags & RSC__E_RELEASE_REQ;
	struct rsc__trace_json *tj;

	if (!(e->obs_state & RSC__OBS_BEGUN)) {
		forget_open(loop, e); /* open before this trace: counted down all the same */
		return;
	}
	if ((tj = begin(loop, 'e', NULL, now)) == NULL)
		return;
	entry_name(tj, e);
	PUT_LIT(tj, ",\"args\":{\"result\":");
	put_int(tj, e->exit_res);
	if (e->exit_res < 0)
		put_errno_op(tj, e->exit_res, e->exit_opcode, NULL);
	if (e->exit_res < 0) {
		put_error(tj, e, e->exit_res, rsc__opcode_name(e->exit_opcode));
		if (!early)
			put_chain(tj, "cause", s->pending); /* it stays the new error's cause */
	} else if (!early && (e->flags & RSC__E_SUPPRESS) && e->suppressed) {
		put_chain(tj, "suppressed", e->suppressed); /* what it was handed, not what came since */
	}
	if (early)
		PUT_LIT(tj, ",\"early\":true");
	if (e->obs_t_release)
		put_us(tj, "release_us", now, e->obs_t_release);
	PUT_LIT(tj, "}}");
	forget_open(loop, e);
}

void rsc__tj_entry(struct rsc_loop *loop, struct rsc__entry *e,
		   enum rsc__obs_ev ev, uint64_t now)
{
	switch (ev) {
	case RSC__OBS_ACQUIRE:
		entry_begin(loop, e, now, true);
		break;
	case RSC__OBS_ENTERED:
		entered(loop, e, now);
		break;
	case RSC__OBS_ENTER_FAILED:
		enter_failed(loop, e, now);
		break;
	case RSC__OBS_RELEASE_STARTED:
		release_started(loop, e, now);
		break;
	case RSC__OBS_RELEASED:
		released(loop, e, now);
		break;
	case RSC__OBS_ENTRY_FREED:
		if (e->obs_state & RSC__OBS_BEGUN)
			entry_end(loop, e, now, "freed without a release: detached or handed over");
		forget_open(loop, e);
		break;
	}
}

static void scope_slice(struct rsc_loop *loop, struct rsc__scope *s, char ph,
			uint64_t now)
{
	struct rsc__trace_json *tj = begin(loop, ph, "scope", now);

	if (!tj)
		return;
	put_str(tj, "name", s->name[0] ? s->name : "(unnamed)", NAME_MAX_OUT);
	PUT_LIT(tj, ",\"id\":");
	put_id(tj, s->h);
	PUT_LIT(tj, ",\"args\":{");
}

void rsc__tj_scope(struct rsc_loop *loop, struct rsc__scope *s, bool open,
		   uint64_t now)
{
	struct rsc__trace_json *tj;
	int status;

	if (open) {
		scope_slice(loop, s, 'b', now);
		if (!(tj = loop->tj) || tj->err)
			return;
		PUT_LIT(tj, "\"parent_id\":");
		put_id(tj, s->parent->h);
		put_str(tj, "parent", s->parent->name, NAME_MAX_OUT);
		PUT_LIT(tj, "}}");
		s->obs_t_open = now;
		return;
	}
	if (!s->obs_t_open)
		return;
	scope_slice(loop, s, 'e', now);
	if (!(tj = loop->tj) || tj->err)
		return;
	status = s->pending ? rsc_error_errno(s->pending) : 0;
	PUT_LIT(tj, "\"status\":");
	put_int(tj, status);
	if (status < 0)
		put_str(tj, "errno", rsc_err_name(status), NAME_MAX_OUT);
	put_chain(tj, "error", s->pending);
	put_us(tj, "open_us", now, s->obs_t_open);
	PUT_LIT(tj, "}}");
	s->obs_t_open = 0;
}

/* @e moved (rsc_entry_move), or @s did (rsc_scope_move, @e NULL): an instant on
 * its slice naming its new scope, whose slice it lies inside from now on. */
void rsc__tj_moved(struct rsc_loop *loop, struct rsc__scope *s, struct rsc__entry *e,
		   uint64_t now)
{
	struct rsc__trace_json *tj;

	if (e) {
		if (!(e->obs_state & RSC__OBS_BEGUN))
			return;
		entry_instant(loop, e, now, "moved");
		if (!(tj = loop->tj) || tj->err)
			return;
		PUT_LIT(tj, ",\"scope_id\":");
		put_id(tj, e->scope->h);
		PUT_LIT(tj, "}}");
		return;
	}
	if (!s->obs_t_open)
		return; /* begun before this trace: no slice here */
	scope_slice(loop, s, 'n', now);
	if (!(tj = loop->tj) || tj->err)
		return;
	PUT_LIT(tj, "\"event\":\"moved\",\"parent_id\":");
	put_id(tj, s->parent->h);
	put_str(tj, "parent", s->parent->name, NAME_MAX_OUT);
	PUT_LIT(tj, "}}");
}

void rsc__tj_finding(struct rsc_loop *loop, const struct rsc_finding *f,
		     uint64_t now)
{
	struct rsc__trace_json *tj = begin(loop, 'i', "audit", now);

	if (!tj)
		return;
	put(tj, ",\"s\":\"t\",\"name\":\"audit finding\",\"args\":{\"fd\":%d", f->fd);
	/* The words of rsc_audit_print(): a slot finding is not a descriptor's. */
	put_str(tj, "kind",
		f->kind == RSC_FINDING_LEAKED	     ? "leaked" :
		f->kind == RSC_FINDING_SLOT_LEAKED   ? "leaked slot" :
		f->kind == RSC_FINDING_SLOT_MISMATCH ? "mismatched slot" : "not released",
		NAME_MAX_OUT);
	put_str(tj, "target", f->target, PATH_MAX_OUT);
	put_str(tj, "scope", f->scope, NAME_MAX_OUT);
	put_str(tj, "expected", f->expected, TEXT_MAX_OUT);
	put(tj, "}}");
}

void rsc__tj_submit(struct rsc_loop *loop, int sqes, uint64_t now)
{
	struct rsc__trace_json *tj = begin(loop, 'C', NULL, now);

	if (!tj)
		return;
	PUT_LIT(tj, ",\"name\":\"loop ");
	put_u64(tj, loop->obs_id);
	PUT_LIT(tj, "\",\"args\":{\"sqes per submit\":");
	put_int(tj, sqes);
	PUT_LIT(tj, ",\"ops in flight\":");
	put_u64(tj, loop->ops_inflight);
	PUT_LIT(tj, ",\"open entries\":");
	put_u64(tj, tj->open_entries);
	PUT_LIT(tj, "}}");
}

/*
 * What began in this trace and is still open: end it (stop) or forget it
 * (start). A new trace carries no slice begun before it, but its "open
 * entries" count the entries open already, and an acquire still in flight
 * enters there without a slice (RSC__OBS_BEFORE: not one "entered at once").
 */
static void settle_open_slices(struct rsc_loop *loop, bool end, uint64_t now)
{
	struct rsc__scope *s;
	struct rsc__entry *e;

	if (!loop->root)
		return;
	for (s = loop->root; s; s = rsc__scope_next(loop->root, s)) {
		RSC__LIST_FOR_EACH(e, &s->entries, scope_node) {
			if (end && (e->obs_state & RSC__OBS_BEGUN))
				entry_end(loop, e, now, "trace stopped");
			e->obs_state = 0;
			if (end || !loop->tj)
				continue;
			if (e->state == RSC_ENTERING) {
				e->obs_state = RSC__OBS_BEFORE;
			} else if (e->state == RSC_ENTERED || e->state == RSC_EXITING) {
				e->obs_state = RSC__OBS_BEFORE;
				count_open(loop->tj, e);
			}
		}
	}
	for (s = loop->root; s; s = rsc__scope_next(loop->root, s)) {
		if (end && s->obs_t_open) {
			scope_slice(loop, s, 'e', now);
			if (loop->tj && !loop->tj->err)
				put(loop->tj, "\"end\":\"trace stopped\"}}");
		}
		s->obs_t_open = 0;
	}
}

static const char *program_name(void)
{
	extern char *program_invocation_short_name;

	return program_invocation_short_name ? program_invocation_short_name : "?";
}

static int rsc__tj_close_own(struct rsc_loop *loop);

/* The error of @loop's trace that a flush returned already, if any. */
static int told_err(const struct rsc_loop *loop)
{
	return loop->tj && loop->tj->err && loop->tj->told ? loop->tj->err : 0;
}

int rsc__tj_open(struct rsc_loop *loop, const char *path)
{
	struct rsc__trace_json *tj;
	bool told;
	int fd, ret;

	/* The buffer before anything: without memory, no file is emptied. */
	tj = rsc__malloc(loop, sizeof(*tj));
	if (!tj)
		return -ENOMEM;
	/*
	 * The old trace first: it may be this very file, which O_TRUNC empties.
	 * Its error, if no call has returned it yet (its last write, now), is
	 * kept for the next flush or close: a switch must not drop it.
	 */
	told = told_err(loop) != 0;
	ret = rsc__tj_close_own(loop);
	if (ret < 0 && !told && !loop->trace_lost)
		loop->trace_lost = ret;
	/*
	 * O_NONBLOCK: a FIFO with no reader would block the open forever
	 * (fifo(7)); it fails with ENXIO instead, and one with a reader at the
	 * first pwrite (ESPIPE): a trace is rewritten in place.
	 */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0644);
	if (fd < 0) {
		ret = -errno;
		free(tj);
		return ret;
	}
	(void)fcntl(fd, F_SETFL, 0);
	/* The runtime's own: an entry adopting it would close it under the trace,
	 * whose next write would land in whatever file took the number next. */
	rsc__ledger_set(fd, RSC__LEDGER_RUNTIME);
	memset(tj, 0, offsetof(struct rsc__trace_json, buf));
	tj->fd = fd;
	tj->pid = (unsigned)getpid();
	tj->clk.tsc = tsc_is_clocksource();
	tj->head_len = (size_t)snprintf(tj->head, sizeof(tj->head),
					",\n{\"ph\":\"?\",\"pid\":%u,\"tid\":%u,\"ts\":",
					tj->pid, loop->obs_id);
	loop->tj = tj;
	settle_open_slices(loop, false, 0);
	/* The header and the track names; no comma before the first event. */
	put(tj, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"producer\":\"%s\","
		"\"clock\":\"CLOCK_MONOTONIC\"},\"traceEvents\":[\n",
	    PACKAGE_STRING);
	put(tj, "{\"ph\":\"M\",\"pid\":%u,\"name\":\"process_name\",\"args\":{\"name\":\"",
	    tj->pid);
	put_esc(tj, program_name(), NAME_MAX_OUT);
	put(tj, "\"}}");
	put(tj, ",\n{\"ph\":\"M\",\"pid\":%u,\"tid\":%u,\"name\":\"thread_name\","
		"\"args\":{\"name\":\"ringscope loop %u\"}}",
	    tj->pid, loop->obs_id, loop->obs_id);
	ret = flush(loop);
	if (ret < 0) {
		loop->tj = NULL;
		rsc__ledger_forget(fd, RSC__LEDGER_RUNTIME);
		close(fd);
		free(tj);
		return ret;
	}
	loop->obs_flags |= RSC__OBS_TRACE;
	return 0;
}

/*
 * An earlier trace's error not yet returned comes first, once; @ret, this
 * trace's own, then waits its turn: a trace still open says it again at
 * its next flush, and one closed now (@closed, @told: a flush returned it
 * already) leaves it in the earlier one's place.
 */
static int take_lost(struct rsc_loop *loop, int ret, bool closed, bool told)
{
	int lost = loop->trace_lost;

	if (!lost)
		return ret;
	loop->trace_lost = closed && ret < 0 && !told ? ret : 0;
	return lost;
}

int rsc__tj_close(struct rsc_loop *loop)
{
	bool told = told_err(loop) != 0;

	return take_lost(loop, rsc__tj_close_own(loop), true, told);
}

/* The same when the loop is freed, both errors nobody heard (@lost: an
 * earlier trace's, @own: this one's); one rsc_loop_trace_flush() already
 * returned is not said again (no write was tried for it now). */
void rsc__tj_close_at_free(struct rsc_loop *loop, int *lost, int *own)
{
	int told = told_err(loop);

	*own = rsc__tj_close_own(loop);
	if (*own == told)
		*own = 0;
	*lost = loop->trace_lost;
	loop->trace_lost = 0;
}

/* Close this trace: its own write error only. */
static int rsc__tj_close_own(struct rsc_loop *loop)
{
	struct rsc__trace_json *tj = loop->tj;
	int ret;

	if (!tj)
		return 0;
	/* A child of fork(2): the file and what is buffered are the parent's to write. */
	if (loop->in_child) {
		ret = 0;
		goto out;
	}
	if (!tj->err)
		settle_open_slices(loop, true, rsc__tj_now(tj));
	ret = flush(loop); /* the last write's error too, not only an earlier one */
	/* Give back the reserved blocks past the end (the size stays). */
	if (tj->prealloc_end && !tj->err)
		(void)!ftruncate(tj->fd, tj->pos + (off_t)TAIL_LEN);
out:
	rsc__ledger_forget(tj->fd, RSC__LEDGER_RUNTIME);
	close(tj->fd);
	free(tj);
	loop->tj = NULL;
	loop->obs_flags &= ~RSC__OBS_TRACE;
	return ret;
}

int rsc__tj_flush(struct rsc_loop *loop)
{
	int ret = loop->tj ? flush(loop) : 0;

	if (loop->trace_lost)
		return take_lost(loop, ret, false, false); /* ret, sticky, comes next */
	if (ret < 0)
		loop->tj->told = true;
	return ret;
}

int rsc_loop_trace_file(struct rsc_loop *loop, const char *path)
{
	int ret;

	RSC__CHECK_ARG(loop, "rsc_loop_trace_file: loop is NULL");
	RSC__SAME_PROCESS(loop, "rsc_loop_trace_file");
	if (!path)
		return rsc__tj_close(loop);
	RSC__CHECK_ARG(*path, "rsc_loop_trace_file: the path is empty");
	ret = rsc__tj_open(loop, path);
	if (ret < 0)
		rsc__set_last_error("rsc_loop_trace_file: cannot write %s: %s", path,
				    rsc_strerror(ret));
	return ret;
}

int rsc_loop_trace_flush(struct rsc_loop *loop)
{
	RSC__CHECK_ARG(loop, "rsc_loop_trace_flush: loop is NULL");
	RSC__SAME_PROCESS(loop, "rsc_loop_trace_flush");
	return rsc__tj_flush(loop);
}
