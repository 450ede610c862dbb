/* SPDX-License-Identifier: MIT */
/*
 * Drives tools/httpd/ringscope-httpd from the outside, over loopback and a
 * Unix socket: starts it on a kernel-chosen port, plays its clients, sends
 * it SIGTERM, and checks its lifecycle summary and exit status. Every wait
 * is bounded: reads have a timeout, and a condition is polled, never slept on.
 *
 * A blocking socket call with a timeout (SO_RCVTIMEO, SO_SNDTIMEO) fails with
 * EINTR, not restarted, when the task is interrupted, and that happens here
 * without any signal: main() probes io_uring with a ring it then closes, and
 * the kernel's teardown of that ring (io_ring_exit_work) runs task_work on
 * this task with TWA_SIGNAL some milliseconds later, under load much later,
 * often during a test's first recv. So every one of those calls retries on
 * EINTR: an interrupted recv is not the server closing the connection.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <dirent.h>
#include <limits.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BODY "Hello from ringscope\n"
#define HEADER_MAX 8192
#define TIMEOUT_MS 10000 /* for anything that should take milliseconds */

struct server {
	pid_t pid;
	int out; /* its stdout */
	char text[16384];
	size_t len;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int status;
};

struct client {
	int fd;
	char buf[16384];
	size_t len;
};

struct response {
	int status;
	bool close; /* "Connection: close" */
	char body[256];
};

static const char *test_name;
static bool failed;
static struct server *running; /* killed if a test gives up half-way */
static char sock_dir[64]; /* short: a sun_path holds 108 bytes */
static rlim_t server_nofile; /* RLIMIT_NOFILE for the next server, 0: inherited */
/* HTTPD_ARGS="--opt value ...": words appended to every server's arguments. */
#define MAX_EXTRA_ARGS 8
static char *extra_args[MAX_EXTRA_ARGS + 1];

#define CHECK(cond, ...)                                   \
	do {                                               \
		if (!(cond)) {                             \
			fail(__LINE__, #cond, __VA_ARGS__); \
			return;                            \
		}                                          \
	} while (0)

/* CHECK for a function that returns @val when it gives up. */
#define CHECK_OR_RETURN(val, cond, ...)                     \
	do {                                               \
		if (!(cond)) {                             \
			fail(__LINE__, #cond, __VA_ARGS__); \
			return (val);                      \
		}                                          \
	} while (0)

static void fail(int line, const char *cond, const char *fmt, ...)
{
	va_list ap;

	printf("FAIL %s: line %d: %s: ", test_name, line, cond);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	failed = true;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static const char *httpd_path(void)
{
	static char path[PATH_MAX + 64];
	char self[PATH_MAX];
	ssize_t n;

	if (getenv("RINGSCOPE_HTTPD"))
		return getenv("RINGSCOPE_HTTPD");
	/* builddir/tests/httpd/check_httpd -> builddir/tools/httpd/ringscope-httpd */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return "ringscope-httpd";
	self[n] = 0;
	*strrchr(self, '/') = 0;
	snprintf(path, sizeof(path), "%s/../../tools/httpd/ringscope-httpd", self);
	return path;
}

/* poll(2) on one descriptor until @deadline (ms), EINTR retried: 1, 0 on timeout or -1. */
static int poll_until(struct pollfd *p, long long deadline)
{
	long long left;
	int r;

	do {
		left = deadline - now_ms();
		r = poll(p, 1, left > 0 ? (int)left : 0);
	} while (r < 0 && errno == EINTR);
	return r;
}

/* Read what the server printed, until @until returns true or @deadline. */
static bool read_output(struct server *s, long long deadline,
			bool (*until)(struct server *s))
{
	while (!until(s)) {
		struct pollfd p = { .fd = s->out, .events = POLLIN };
		ssize_t n;

		if (poll_until(&p, deadline) <= 0)
			return false;
		n = read(s->out, s->text + s->len, sizeof(s->text) - 1 - s->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return until(s);
		s->len += (size_t)n;
		s->text[s->len] = 0;
	}
	return true;
}

static bool has_listening_line(struct server *s)
{
	const char *p = strstr(s->text, "listening on ");

	return p && strchr(p, '\n');
}

static bool never(struct server *s)
{
	(void)s;
	return false;
}

/* "listening on 127.0.0.1:PORT", "[::1]:PORT" or "unix:PATH" */
static bool parse_listening(struct server *s)
{
	char line[256], *p, *colon;
	struct sockaddr_in *in = (struct sockaddr_in *)&s->addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&s->addr;
	struct sockaddr_un *un = (struct sockaddr_un *)&s->addr;

	sscanf(strstr(s->text, "listening on ") + 13, "%255s", line);
	memset(&s->addr, 0, sizeof(s->addr));
	if (!strncmp(line, "unix:", 5)) {
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%.*s",
			 (int)sizeof(un->sun_path) - 1, line + 5);
		s->addrlen = sizeof(*un);
		return true;
	}
	colon = strrchr(line, ':');
	if (!colon)
		return false;
	*colon = 0;
	if (line[0] == '[') {
		p = line + 1;
		p[strlen(p) - 1] = 0;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((unsigned short)atoi(colon + 1));
		s->addrlen = sizeof(*in6);
		return inet_pton(AF_INET6, p, &in6->sin6_addr) == 1;
	}
	in->sin_family = AF_INET;
	in->sin_port = htons((unsigned short)atoi(colon + 1));
	s->addrlen = sizeof(*in);
	return inet_pton(AF_INET, line, &in->sin_addr) == 1;
}

/* Run the server with "--port 0" and @args (NULL-terminated); false if it did not listen. */
static bool start(struct server *s, const char *const *args)
{
	const char *argv[24] = { "ringscope-httpd", "--addr", "127.0.0.1", "--port", "0" };
	int pipefd[2], n = 5, i;

	memset(s, 0, sizeof(*s));
	while (args && *args && n < 22)
		argv[n++] = *args++;
	for (i = 0; extra_args[i] && n < 22; i++)
		argv[n++] = extra_args[i];
	argv[n] = NULL;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return false;
	fflush(stdout);
	s->pid = fork();
	if (s->pid == 0) {
		struct rlimit rl = { server_nofile, server_nofile };

		dup2(pipefd[1], STDOUT_FILENO);
		if (server_nofile && setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(126);
		execv(httpd_path(), (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", httpd_path(), strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	s->out = pipefd[0];
	if (s->pid < 0)
		return false;
	running = s;
	return read_output(s, now_ms() + TIMEOUT_MS, has_listening_line) && parse_listening(s);
}

/* Wait for the server's exit (it has been signalled); false if it hangs. */
static bool reap(struct server *s)
{
	long long deadline = now_ms() + TIMEOUT_MS;
	pid_t r;

	/* Its stdout closes when it exits: read the summary up to there. */
	(void)read_output(s, deadline, never);
	while ((r = waitpid(s->pid, &s->status, WNOHANG)) == 0 && now_ms() < deadline) {
		struct pollfd p = { .fd = -1 };

		poll(&p, 0, 5);
	}
	close(s->out);
	if (r != s->pid)
		return false;
	running = NULL;
	return true;
}

static bool stop(struct server *s)
{
	return kill(s->pid, SIGTERM) == 0 && reap(s);
}

static void kill_running(void)
{
	if (running) {
		kill(running->pid, SIGKILL);
		waitpid(running->pid, NULL, 0);
		close(running->out);
		running = NULL;
	}
}

/* A number that follows @label in the summary, or -1. */
static long long summary_value(const struct server *s, const char *label)
{
	const char *p = strstr(s->text, label);

	return p ? strtoll(p + strlen(label), NULL, 10) : -1;
}

/* The summary every clean exit ends with: all closed, audit silent, fds back. */
#define CHECK_CLEAN_EXIT(s)                                                              \
	do {                                                                             \
		CHECK(WIFEXITED((s)->status) && WEXITSTATUS((s)->status) == 0,           \
		      "exit status 0x%x; output:\n%s", (s)->status, (s)->text);          \
		CHECK(summary_value(s, "accepted ") == summary_value(s, "closed ") &&    \
			      summary_value(s, "accepted ") >= 0,                        \
		      "%s", (s)->text);                                                  \
		CHECK(strstr((s)->text, ": 0 findings"), "%s", (s)->text);               \
	} while (0)

/* 0 once the connect in progress on @fd has succeeded, or -errno. */
static int connect_outcome(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int err = 0, r = poll_until(&p, now_ms() + TIMEOUT_MS);

	if (r <= 0)
		return r < 0 ? -errno : -ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

static int connect_to(const struct server *s)
{
	struct timeval tv = { .tv_sec = TIMEOUT_MS / 1000 };
	int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)&s->addr, s->addrlen) < 0) {
		int err = -errno;

		/* Interrupted, the connect goes on: its outcome is SO_ERROR once writable. */
		if (err == -EINTR)
			err = connect_outcome(fd);
		if (err < 0) {
			close(fd);
			return err;
		}
	}
	return fd;
}

static bool dial(const struct server *s, struct client *c)
{
	c->len = 0;
	c->fd = connect_to(s);
	return c->fd >= 0;
}

static bool send_str(struct client *c, const char *str)
{
	size_t len = strlen(str), off = 0;

	while (off < len) {
		ssize_t n = send(c->fd, str + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		off += (size_t)n;
	}
	return true;
}

/* One response off the connection (keeping what follows it); false on EOF or timeout. */
static bool get_response(struct client *c, struct response *r)
{
	char *end, *cl, *p;
	size_t head, body;

	for (;;) {
		c->buf[c->len] = 0;
		end = strstr(c->buf, "\r\n\r\n");
		if (end) {
			head = (size_t)(end + 4 - c->buf);
			cl = strcasestr(c->buf, "\r\nContent-Length: ");
			body = cl && cl < end ? strtoul(cl + 18, NULL, 10) : 0;
			if (c->len >= head + body)
				break;
		}
		ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);

		if (n < 0 && errno == EINTR)
			continue; /* not the server's doing: see the top of this file */
		if (n <= 0)
			return false;
		c->len += (size_t)n;
	}
	memset(r, 0, sizeof(*r));
	if (sscanf(c->buf, "HTTP/1.1 %d ", &r->status) != 1)
		return false;
	*end = 0;
	p = strcasestr(c->buf, "\r\nConnection: close");
	r->close = p != NULL;
	snprintf(r->body, sizeof(r->body), "%.*s", (int)body, end + 4);
	c->len -= head + body;
	memmove(c->buf, c->buf + head + body, c->len);
	return true;
}

/* The server closed its end: EOF (or a reset) within @ms, and nothing else came. */
static bool closed_within(struct client *c, int ms)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	char byte;

	if (c->len || poll_until(&p, now_ms() + ms) != 1)
		return false;
	ssize_t n = recv(c->fd, &byte, 1, MSG_DONTWAIT);

	return n == 0 || (n < 0 && errno == ECONNRESET);
}

static void hang_up(struct client *c)
{
	close(c->fd);
	c->fd = -1;
}

static const char get_root[] = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";

/*
 * Slots in use in the direct table of the server's ring @fd: the lines after
 * "UserFiles:" in its fdinfo (io_uring/fdinfo.c), one per slot in use. -1 if
 * the kernel left that section out (it could not take the ring's lock).
 */
static int ring_slots(const struct server *s, const char *fd)
{
	char path[300], line[512];
	bool in_section = false, seen = false;
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", (int)s->pid, fd);
	f = fopen(path, "re");
	if (!f)
		return 0; /* closed meanwhile */
	while (fgets(line, sizeof(line), f)) {
		char *p = line, *end;

		if (!strncmp(line, "UserFiles:", 10)) {
			in_section = seen = true;
			continue;
		}
		if (!in_section)
			continue;
		while (*p == ' ' || *p == '\t')
			p++;
		strtoul(p, &end, 10);
		if (end == p || *end != ':')
			in_section = false;
		else
			n++;
	}
	fclose(f);
	return seen ? n : -1;
}

/*
 * Descriptors the server holds now: /proc/PID/fd, plus the slots in use in
 * its rings' direct tables (connections are direct slots unless --no-direct),
 * which /proc/PID/fd never shows.
 */
static int server_fds(const struct server *s)
{
	char path[300], link[64];
	struct dirent *d;
	int tries;

	for (tries = 0; tries < 1000; tries++) {
		struct pollfd p = { .fd = -1 };
		bool busy = false;
		int n = 0;
		DIR *dir;

		snprintf(path, sizeof(path), "/proc/%d/fd", (int)s->pid);
		dir = opendir(path);
		if (!dir)
			return -1;
		while ((d = readdir(dir))) {
			ssize_t len;
			int slots;

			if (d->d_name[0] == '.')
				continue;
			n++;
			snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)s->pid, d->d_name);
			len = readlink(path, link, sizeof(link) - 1);
			if (len <= 0)
				continue;
			link[len] = 0;
			if (strcmp(link, "anon_inode:[io_uring]"))
				continue;
			slots = ring_slots(s, d->d_name);
			if (slots < 0)
				busy = true;
			else
				n += slots;
		}
		closedir(dir);
		if (!busy)
			return n;
		poll(&p, 0, 1);
	}
	return -1;
}

static bool wait_server_fds(const struct server *s, int want)
{
	long long deadline = now_ms() + TIMEOUT_MS;

	while (server_fds(s) != want) {
		struct pollfd p = { .fd = -1 };

		if (now_ms() > deadline)
			return false;
		poll(&p, 0, 5);
	}
	return true;
}

/*
 * Stopping accepting follows the signal: new connections are refused once it
 * has (or find no socket at a Unix path the server has removed).
 */
static bool wait_refused(const struct server *s)
{
	long long deadline = now_ms() + TIMEOUT_MS;
	int fd;

	while ((fd = connect_to(s)) >= 0 || (fd != -ECONNREFUSED && fd != -ENOENT)) {
		struct pollfd p = { .fd = -1 };

		if (fd >= 0)
			close(fd);
		if (now_ms() > deadline)
			return false;
		poll(&p, 0, 5);
	}
	return true;
}

static void get_root_answers_200(void)
{
	struct server s;
	struct client c;
	struct response r;

	CHECK(start(&s, NULL), "no 'listening on' line: %s", s.text);
	CHECK(dial(&s, &c), "connect: %s", strerror(errno));
	CHECK(send_str(&c, get_root) && get_response(&c, &r), "no response");
	CHECK(r.status == 200 && !r.close, "status %d close %d", r.status, r.close);
	CHECK(!strcmp(r.body, BODY), "body '%s'", r.body);
	/* Parsable, but not GET /: answered, and the connection stays. */
	CHECK(send_str(&c, "GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n") && get_response(&c, &r) &&
		      r.status == 404 && !r.close, "status %d", r.status);
	CHECK(send_str(&c, "DELETE / HTTP/1.1\r\nHost: t\r\n\r\n") && get_response(&c, &r) &&
		      r.status == 405 && !r.close, "status %d", r.status);
	hang_up(&c);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
	CHECK(strstr(s.text, "requests: 3 served (200: 1, 400: 0, 404: 1, 405: 1, 431: 0)"),
	      "%s", s.text);
}

static void keep_alive_serves_several_requests(void)
{
	struct server s;
	struct client c;
	struct response r;
	int i;

	CHECK(start(&s, NULL), "no 'listening on' line: %s", s.text);
	CHECK(dial(&s, &c), "connect: %s", strerror(errno));
	for (i = 0; i < 5; i++) {
		CHECK(send_str(&c, get_root) && get_response(&c, &r), "request %d: no response", i);
		CHECK(r.status == 200 && !r.close && !strcmp(r.body, BODY), "request %d", i);
	}
	/* Three pipelined in one write: three responses, in order. */
	CHECK(send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n"
			   "GET / HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n\r\n"),
	      "send");
	CHECK(get_response(&c, &r) && r.status == 200, "pipelined 1");
	CHECK(get_response(&c, &r) && r.status == 404, "pipelined 2");
	CHECK(get_response(&c, &r) && r.status == 200 && !r.close, "pipelined 3");
	hang_up(&c);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
	CHECK(summary_value(&s, "accepted ") == 1 && summary_value(&s, "requests: ") == 8,
	      "%s", s.text);
}

static bool extra_arg(const char *arg)
{
	int i;

	for (i = 0; extra_args[i]; i++)
		if (!strcmp(extra_args[i], arg))
			return true;
	return false;
}

/* "ring: N io_uring_enter calls, M SQEs, ...": M, or -1. */
static long long summary_sqes(const struct server *s)
{
	const char *p = strstr(s->text, "ring: ");
	long long calls, sqes;

	return p && sscanf(p, "ring: %lld io_uring_enter calls, %lld SQEs", &calls, &sqes) == 2 ?
		       sqes : -1;
}

#define N_KEEP 100

/*
 * A keep-alive connection's requests after the first are received by one
 * multishot receive: about one SQE per request (its send), not two. With
 * --no-multishot, a recv and a send each.
 */
static void keep_alive_requests_share_one_receive(void)
{
	struct server s;
	struct client c;
	struct response r;
	long long sqes, loops;
	bool multishot = !extra_arg("--no-multishot");
	int i;

	CHECK(start(&s, NULL), "no 'listening on' line: %s", s.text);
	CHECK(dial(&s, &c), "connect: %s", strerror(errno));
	for (i = 0; i < N_KEEP; i++)
		CHECK(send_str(&c, get_root) && get_response(&c, &r) && r.status == 200 && !r.close,
		      "request %d", i);
	hang_up(&c);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
	sqes = summary_sqes(&s);
	loops = summary_value(&s, "loops: ");
	CHECK(loops >= 1, "%s", s.text);
	if (multishot) {
		CHECK(strstr(s.text, "receives: multishot"), "%s", s.text);
		/* The sends, two receives, and the dozen of each loop's setup and shutdown. */
		CHECK(sqes >= N_KEEP && sqes <= N_KEEP + 8 + 14 * loops, "%lld SQEs: %s", sqes,
		      s.text);
	} else {
		CHECK(strstr(s.text, "receives: a recv per request (--no-multishot)"), "%s", s.text);
		CHECK(sqes >= 2 * N_KEEP, "%lld SQEs: %s", sqes, s.text);
	}
}

#define N_PIPE 400

/*
 * More pipelined requests in one write than the 8 KiB request buffer holds:
 * all answered, in order (the multishot receive takes them as they come and
 * keeps what does not fit; a recv takes what fits).
 */
static void pipelined_requests_beyond_the_buffer_are_answered_in_order(void)
{
	static char burst[N_PIPE * 40];
	struct server s;
	struct client c;
	struct response r;
	size_t len = 0;
	int i;

	for (i = 0; i < N_PIPE; i++)
		len += (size_t)sprintf(burst + len, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n",
				       i % 3 ? "/" : "/x");
	CHECK(len > HEADER_MAX, "%zu bytes", len);
	CHECK(start(&s, NULL), "no 'listening on' line: %s", s.text);
	CHECK(dial(&s, &c), "connect: %s", strerror(errno));
	/* Keep-alive first, so that the burst comes to a connection that has been answered. */
	CHECK(send_str(&c, get_root) && get_response(&c, &r) && r.status == 200, "first");
	CHECK(send_str(&c, burst), "send");
	for (i = 0; i < N_PIPE; i++)
		CHECK(get_response(&c, &r) && r.status == (i % 3 ? 200 : 404) && !r.close,
		      "pipelined %d: status %d", i, r.status);
	hang_up(&c);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
	CHECK(summary_value(&s, "requests: ") == N_PIPE + 1, "%s", s.text);
}

static void connection_close_is_honoured(void)
{
	struct server s;
	struct client c;
	struct response r;

	CHECK(start(&s, NULL), "no 'listening on' line: %s", s.text);
	CHECK(dial(&s, &c), "connect");
	CHECK(send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") &&
		      get_response(&c, &r), "no response");
	CHECK(r.status == 200 && r.close, "status %d close %d", r.status, r.close);
	CHECK(closed_within(&c, TIMEOUT_MS), "the server kept the connection");
	hang_up(&c);
	/* HTTP/1.0 closes unless asked to keep alive. */
	CHECK(dial(&s, &c), "connect");
	CHECK(send_str(&c, "GET / HTTP/1.0\r\n\r\n") && get_response(&c, &r) && r.close,
	      "1.0 response");
	CHECK(closed_within(&c, TIMEOUT_MS), "HTTP/1.0 connection kept");
	hang_up(&c);
	CHECK(dial(&s, &c), "connect");
	CHECK(send_str(&c, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") &&
		      get_response(&c, &r) && !r.close, "1.0 keep-alive response");
	CHECK(send_str(&c, get_root) && get_response(&c, &r) && r.status == 200, "again");
	hang_up(&c);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
}

/*
 * Each of @bad on a connection of its own: a 400 with "Connection: close",
 * then the close, with nothing after it (a body is never taken for a
 * request). Sets failed and returns at the first that is not.
 */
static void each_gets_400_and_a_close(struct server *s, const char *const *bad, unsigned n)
{
	struct client c;
	struct response r;
	unsigned i;

	for (i = 0; i < n; i++) {
		CHECK(dial(s, &c), "connect");
		/* One write, all read by the server: its close is a FIN, not a reset. */
		CHECK(send_str(&c, bad[i]) && get_response(&c, &r), "request %u: no response", i);
		CHECK(r.status == 400 && r.close, "request %u: status %d close %d", i, r.status,
		      r.close);
		CHECK(closed_within(&c, TIMEOUT_MS), "request %u: connection kept", i);
		hang_up(&c);
	}
}

/* A server answers each of @bad with a 400 and a close, exits cleanly, and counted them all. */
static void only_bad_requests(const char *const *bad, unsigned n)
{
	struct server s;

	CHECK(start(&s, NULL), "no 'listening on' line: %s", s.text);
	each_gets_400_and_a_close(&s, bad, n);
	if (failed)
		return;
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
	CHECK(summary_value(&s, "400: ") == (long long)n, "%s", s.text);
}

static void bad_request_gets_400_and_close(void)
{
	static const char *const bad[] = {
		"GARBAGE\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",				     /* no Host */
		"GET / HTTP/2.0\r\nHost: t\r\n\r\n",			     /* version */
		"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n",	     /* name */
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n", /* a body */
	};

	only_bad_requests(bad, sizeof(bad) / sizeof(bad[0]));
}

static void content_length_must_be_a_single_zero(void)
{
	/* Each would leave body bytes to be parsed as the next request: smuggling. */
	static const char *const bad[] = {
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 0\r\n\r\nGET /",
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0, 5\r\n\r\nGET /",
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0,0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nGET /",
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\nGET /",
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nGET /",
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: +0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0x0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0 0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
	};
	static const char *const good[] = {
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\ncontent-length:\t00 \r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
	};
	struct server s;
	struct client c;
	struct response r;
	unsigned i;

	CHECK(start(&s, NULL), "no 'listening on' line: %s", s.text);
	each_gets_400_and_a_close(&s, bad, sizeof(bad) / sizeof(bad[0]));
	if (failed)
		return;
	CHECK(dial(&s, &c), "connect");
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK(send_str(&c, good[i]) && get_response(&c, &r) && r.status == 200 && !r.close,
		      "request %u: status %d", i, r.status);
	hang_up(&c);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
	CHECK(summary_value(&s, "400: ") == (long long)(sizeof(bad) / sizeof(bad[0])), "%s",
	      s.text);
}

/*
 * Lines end with CRLF here: a bare LF or a bare CR is a malformed request,
 * answered with 400 at once, not left waiting for a CRLF CRLF until the idle
 * deadline.
 */
static void bare_lf_or_cr_line_ends_get_400(void)
{
	static const char *const bad[] = {
		"GET / HTTP/1.1\nHost: t\n\n",
		"GET / HTTP/1.1\r\nHost: t\n\n",
		"GET / HTTP/1.1\r\nHost: t\nX: y\r\n\r\n",
		"GET / HTTP/1.1\rHost: t\r\r",
		"GET / HTTP/1.1\r\nHost: t\r\r",
		"GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n",
	};

	only_bad_requests(bad, sizeof(bad) / sizeof(bad[0]));
}

/*
 * A keep-alive client that pipelines requests and then shuts its side
 * (shutdown(SHUT_WR)) gets every answer before the close, whether its
 * requests come by a multishot receive or by rsc_recv.
 */
static void half_closed_client_gets_every_answer(void)
{
	struct server s;
	struct client c;
	struct response r;
	int i;

	CHECK(start(&s, NULL), "no 'listening on' line: %s", s.text);
	CHECK(dial(&s, &c), "connect");
	CHECK(send_str(&c, get_root) && get_response(&c, &r) && r.status == 200, "first");
	CHECK(send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n"
			   "GET / HTTP/1.1\r\nHost: t\r\n\r\n"),
	      "send");
	CHECK(shutdown(c.fd, SHUT_WR) == 0, "shutdown: %s", strerror(errno));
	for (i = 0; i < 3; i++)
		CHECK(get_response(&c, &r) && r.status == (i == 1 ? 404 : 200),
		      "pipelined %d: status %d", i, r.status);
	CHECK(closed_within(&c, TIMEOUT_MS), "connection kept after the peer's FIN");
	hang_up(&c);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
	CHECK(summary_value(&s, "requests: ") == 4, "%s", s.text);
}

/* Bad option values: a usage error, exit status 2, never a listener. */
static void option_errors_exit_2(void)
{
	static const char *const bad[][5] = {
		{ "--port", "70000" },	 { "--port", " 80" },	   { "--port", "+0" },
		{ "--port", "-1" },	 { "--port", "" },	   { "--threads", "0" },
		{ "--threads", "x" },	 { "--max-conns", "-5" },  { "--idle-timeout", "1e3" },
		{ "--grace", "5s" },	 { "--audit", "FULL" },	   { "--addr", "1.2.3" },
		{ "--unix", "" },	 { "--bogus" },		   { "stray" },
		{ "--threads", "1025" }, { "--max-conns", "4294967296" },
		{ "--grace", "99999999999999999999" },
		/* Not valid whether or not --unix makes it unused. */
		{ "--unix", "/nonexistent/httpd.sock", "--port", "70000" },
		{ "--unix", "/nonexistent/httpd.sock", "--addr", "1.2.3" },
	};
	struct server s;
	unsigned i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(!start(&s, bad[i]), "%s %s: it listened", bad[i][0], bad[i][1]);
		CHECK(reap(&s), "%s: no exit", bad[i][0]);
		CHECK(WIFEXITED(s.status) && WEXITSTATUS(s.status) == 2,
		      "%s '%s': status %#x", bad[i][0], bad[i][1] ? bad[i][1] : "", s.status);
	}
}

static void oversize_headers_get_431(void)
{
	static char big[HEADER_MAX + 1];
	struct server s;
	struct client c;
	struct response r;
	size_t n;

	/* Exactly the limit and no blank line: the server reads all of it, then answers. */
	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: t\r\nX-Big: ");
	memset(big + n, 'a', HEADER_MAX - n);
	big[HEADER_MAX] = 0;
	CHECK(start(&s, NULL), "no 'listening on' line: %s", s.text);
	CHECK(dial(&s, &c), "connect");
	CHECK(send_str(&c, big) && get_response(&c, &r), "no response");
	CHECK(r.status == 431 && r.close, "status %d", r.status);
	CHECK(closed_within(&c, TIMEOUT_MS), "connection kept");
	hang_up(&c);
	/* Just under it is fine. */
	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: t\r\nX-Big: ");
	memset(big + n, 'a', HEADER_MAX - n - 4);
	memcpy(big + HEADER_MAX - 4, "\r\n\r\n", 5);
	CHECK(dial(&s, &c), "connect");
	CHECK(send_str(&c, big) && get_response(&c, &r) && r.status == 200, "8 KiB request");
	hang_up(&c);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
}

/*
 * An oversized request behind an answered one, received by rsc_recv (so its
 * last bytes are still unread when the server closes, and the close is a
 * reset): the 431 reaches the client all the same. Nagle held it back while
 * the answer before waited for its ACK, and the reset dropped it.
 */
static void oversize_pipelined_request_gets_its_431(void)
{
	static const char *const args[] = { "--no-multishot", NULL };
	static char burst[HEADER_MAX + 128];
	struct server s;
	struct client c;
	struct response r;
	size_t n;
	int i;

	n = (size_t)snprintf(burst, sizeof(burst), "%sGET / HTTP/1.1\r\nHost: t\r\nX-Big: ",
			     get_root);
	memset(burst + n, 'a', HEADER_MAX + 1 - (n - strlen(get_root)));
	n = strlen(get_root) + HEADER_MAX + 1;
	snprintf(burst + n, sizeof(burst) - n, "\r\n\r\n%s", get_root);
	CHECK(start(&s, args), "no 'listening on' line: %s", s.text);
	for (i = 0; i < 5; i++) {
		CHECK(dial(&s, &c), "connect");
		CHECK(send_str(&c, get_root) && get_response(&c, &r) && r.status == 200, "first");
		CHECK(send_str(&c, burst), "send");
		CHECK(get_response(&c, &r) && r.status == 200, "%d: the request before", i);
		CHECK(get_response(&c, &r), "%d: no 431: the reset took it", i);
		CHECK(r.status == 431 && r.close, "%d: status %d", i, r.status);
		CHECK(closed_within(&c, TIMEOUT_MS), "%d: connection kept", i);
		hang_up(&c);
	}
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
	CHECK(summary_value(&s, "431: ") == 5, "%s", s.text);
}

static void idle_client_is_closed(void)
{
	static const char *const args[] = { "--idle-timeout", "200", NULL };
	struct server s;
	struct client c, d;
	struct response r;
	long long t0;

	CHECK(start(&s, args), "no 'listening on' line: %s", s.text);
	t0 = now_ms();
	CHECK(dial(&s, &c), "connect");
	CHECK(dial(&s, &d), "connect");
	CHECK(send_str(&d, get_root) && get_response(&d, &r) && r.status == 200, "request");
	CHECK(closed_within(&c, TIMEOUT_MS), "a silent client stayed");
	CHECK(now_ms() - t0 >= 150, "closed after %lld ms only", now_ms() - t0);
	CHECK(closed_within(&d, TIMEOUT_MS), "an idle keep-alive client stayed");
	hang_up(&c);
	hang_up(&d);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
	CHECK(summary_value(&s, "idle timeouts ") == 2, "%s", s.text);
}

static void disconnect_mid_request_releases_its_scope(void)
{
	struct server s;
	struct client c;
	struct response r;
	int base, i;

	CHECK(start(&s, NULL), "no 'listening on' line: %s", s.text);
	base = server_fds(&s);
	for (i = 0; i < 5; i++) {
		CHECK(dial(&s, &c), "connect");
		CHECK(send_str(&c, "GET / HTTP/1.1\r\nHo"), "send");
		CHECK(wait_server_fds(&s, base + 1), "not accepted: %d fds", server_fds(&s));
		hang_up(&c);
		/* Its recv ends (EOF), its scope closes, the descriptor goes. */
		CHECK(wait_server_fds(&s, base), "still %d fds, %d before", server_fds(&s), base);
	}
	CHECK(dial(&s, &c), "connect");
	CHECK(send_str(&c, get_root) && get_response(&c, &r) && r.status == 200, "still serving");
	hang_up(&c);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
	CHECK(summary_value(&s, "accepted ") == 6, "%s", s.text);
}

#define N_MID 8

static void sigterm_mid_request_is_graceful(void)
{
	/* Long enough for the finishing half even on a slow, sanitized run. */
	static const char *const args[] = { "--grace", "3000", NULL };
	static const char first_and_half[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\n";
	struct server s;
	struct client c[N_MID], idle;
	struct response r;
	int i;

	CHECK(start(&s, args), "no 'listening on' line: %s", s.text);
	/*
	 * One write each: a request and half of the next. Once the first
	 * response is back, the server holds the half: mid-request.
	 */
	for (i = 0; i < N_MID; i++) {
		CHECK(dial(&s, &c[i]), "connect %d", i);
		CHECK(send_str(&c[i], first_and_half) && get_response(&c[i], &r) &&
			      r.status == 200 && !r.close, "client %d", i);
	}
	CHECK(dial(&s, &idle), "connect");
	CHECK(send_str(&idle, get_root) && get_response(&idle, &r), "idle client");
	CHECK(kill(s.pid, SIGTERM) == 0, "kill");
	CHECK(wait_refused(&s), "still accepting after SIGTERM");
	/* Between requests: closed at once. */
	CHECK(closed_within(&idle, TIMEOUT_MS), "idle connection kept");
	/* Half finish their request: answered, with Connection: close. */
	for (i = 0; i < N_MID / 2; i++) {
		CHECK(send_str(&c[i], "Host: t\r\n\r\n") && get_response(&c[i], &r), "client %d", i);
		CHECK(r.status == 200 && r.close, "client %d: status %d close %d", i, r.status,
		      r.close);
		CHECK(closed_within(&c[i], TIMEOUT_MS), "client %d kept", i);
	}
	/* The others never do: closed when the grace period ends. */
	for (; i < N_MID; i++)
		CHECK(closed_within(&c[i], TIMEOUT_MS), "client %d kept", i);
	CHECK(reap(&s), "no exit");
	for (i = 0; i < N_MID; i++)
		hang_up(&c[i]);
	hang_up(&idle);
	CHECK_CLEAN_EXIT(&s);
	CHECK(summary_value(&s, "cut at the deadline ") == N_MID / 2, "%s", s.text);
	CHECK(summary_value(&s, "requests: ") == N_MID + 1 + N_MID / 2, "%s", s.text);
}

static void second_signal_closes_at_once(void)
{
	static const char *const args[] = { "--grace", "60000", NULL };
	struct server s;
	struct client c;
	struct response r;
	long long t0;

	CHECK(start(&s, args), "no 'listening on' line: %s", s.text);
	CHECK(dial(&s, &c), "connect");
	CHECK(send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\n") &&
		      get_response(&c, &r), "first request");
	t0 = now_ms();
	CHECK(kill(s.pid, SIGTERM) == 0, "kill");
	CHECK(wait_refused(&s), "still accepting after SIGTERM");
	CHECK(kill(s.pid, SIGINT) == 0, "kill");
	CHECK(reap(&s), "no exit after a second signal");
	CHECK(now_ms() - t0 < TIMEOUT_MS, "took %lld ms", now_ms() - t0);
	CHECK(closed_within(&c, TIMEOUT_MS), "connection kept");
	hang_up(&c);
	CHECK_CLEAN_EXIT(&s);
	/* The one connection mid-request is cut once, by the second signal: counted once. */
	CHECK(summary_value(&s, "cut at the deadline ") == 1, "%s", s.text);
}

/*
 * Two signals that reach the server before its loop reads the signal pipe
 * (here: sent while it is stopped) are two signals, not one: the second still
 * ends the grace at once.
 */
static void two_signals_at_once_close_at_once(void)
{
	static const char *const args[] = { "--grace", "60000", NULL };
	struct server s;
	struct client c;
	struct response r;

	CHECK(start(&s, args), "no 'listening on' line: %s", s.text);
	CHECK(dial(&s, &c), "connect");
	CHECK(send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\n") &&
		      get_response(&c, &r), "first request");
	CHECK(kill(s.pid, SIGSTOP) == 0, "kill");
	CHECK(kill(s.pid, SIGTERM) == 0 && kill(s.pid, SIGINT) == 0, "kill");
	CHECK(kill(s.pid, SIGCONT) == 0, "kill");
	CHECK(reap(&s), "no exit: the second signal was lost, the grace runs on");
	CHECK(closed_within(&c, TIMEOUT_MS), "connection kept");
	hang_up(&c);
	CHECK_CLEAN_EXIT(&s);
	CHECK(summary_value(&s, "cut at the deadline ") == 1, "%s", s.text);
}

/*
 * A hang-up stops the server as SIGTERM does: a request mid-way is answered,
 * the summary is printed, and a Unix socket's path is removed (the default
 * action killed it and left the path to fail the next start).
 */
static void sighup_shuts_down_like_sigterm(void)
{
	char path[128];
	const char *args[] = { "--unix", path, NULL };
	struct server s;
	struct client c;
	struct response r;
	struct stat st;

	snprintf(path, sizeof(path), "%s/hup.sock", sock_dir);
	CHECK(start(&s, args), "no 'listening on' line: %s", s.text);
	CHECK(dial(&s, &c), "connect");
	CHECK(send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\n") &&
		      get_response(&c, &r), "first request");
	CHECK(kill(s.pid, SIGHUP) == 0, "kill");
	CHECK(wait_refused(&s), "still accepting after SIGHUP");
	CHECK(send_str(&c, "Host: t\r\n\r\n") && get_response(&c, &r) && r.status == 200 &&
		      r.close, "the request under way was not answered");
	CHECK(closed_within(&c, TIMEOUT_MS), "connection kept");
	hang_up(&c);
	CHECK(reap(&s), "no exit after SIGHUP");
	CHECK_CLEAN_EXIT(&s);
	CHECK(stat(path, &st) < 0 && errno == ENOENT, "socket file left");
}

static void max_conns_closes_the_excess(void)
{
	static const char *const args[] = { "--max-conns", "2", NULL };
	struct server s;
	struct client c[3];
	struct response r;
	long long deadline;
	bool served;
	int i, base;

	CHECK(start(&s, args), "no 'listening on' line: %s", s.text);
	base = server_fds(&s);
	for (i = 0; i < 2; i++) {
		CHECK(dial(&s, &c[i]), "connect");
		CHECK(send_str(&c[i], get_root) && get_response(&c[i], &r), "client %d", i);
	}
	CHECK(dial(&s, &c[2]), "connect");
	CHECK(closed_within(&c[2], TIMEOUT_MS), "a third connection was kept");
	hang_up(&c[2]);
	CHECK(wait_server_fds(&s, base + 2), "%d fds, %d before", server_fds(&s), base);
	/* Below the limit again (once the server has seen the hang-up): served. */
	hang_up(&c[0]);
	CHECK(wait_server_fds(&s, base + 1), "%d fds, %d before", server_fds(&s), base);
	/*
	 * Its descriptor is gone before the server's count of connections has
	 * dropped: the loop that held it counts it out when its close completes,
	 * and with --threads a new connection may reach another loop's listener
	 * (SO_REUSEPORT) first and be refused. So the count catches up within the
	 * timeout, not at once.
	 */
	deadline = now_ms() + TIMEOUT_MS;
	while (!(served = dial(&s, &c[0]) && send_str(&c[0], get_root) &&
			  get_response(&c[0], &r) && r.status == 200) &&
	       now_ms() < deadline) {
		struct pollfd p = { .fd = -1 };

		hang_up(&c[0]);
		poll(&p, 0, 5);
	}
	CHECK(served, "not served below the limit");
	hang_up(&c[0]);
	hang_up(&c[1]);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
	CHECK(summary_value(&s, "refused ") >= 1, "%s", s.text);
}

static void serves_ipv6_and_unix_sockets(void)
{
	char path[128];
	const char *args[] = { "--unix", path, NULL };
	const char *args6[] = { "--addr", "::1", NULL };
	struct server s;
	struct client c;
	struct response r;
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/httpd.sock", sock_dir);
	CHECK(start(&s, args), "no 'listening on' line: %s", s.text);
	CHECK(s.addr.ss_family == AF_UNIX, "%s", s.text);
	CHECK(dial(&s, &c) && send_str(&c, get_root) && get_response(&c, &r) && r.status == 200,
	      "unix GET");
	hang_up(&c);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
	CHECK(stat(path, &st) < 0 && errno == ENOENT, "socket file left");

	fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		printf("SKIP %s (IPv6 part): no IPv6\n", test_name);
		return;
	}
	close(fd);
	if (!start(&s, args6)) {
		kill_running();
		printf("SKIP %s (IPv6 part): cannot listen on ::1\n", test_name);
		return;
	}
	CHECK(s.addr.ss_family == AF_INET6, "%s", s.text);
	CHECK(dial(&s, &c) && send_str(&c, get_root) && get_response(&c, &r) && r.status == 200,
	      "IPv6 GET");
	hang_up(&c);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
}

static void full_audit_stays_silent(void)
{
	static const char *const args[] = { "--audit", "full", NULL };
	struct server s;
	struct client c[4];
	struct response r;
	int i;

	CHECK(start(&s, args), "no 'listening on' line: %s", s.text);
	for (i = 0; i < 4; i++)
		CHECK(dial(&s, &c[i]) && send_str(&c[i], get_root) && get_response(&c[i], &r),
		      "client %d", i);
	hang_up(&c[0]);
	CHECK(send_str(&c[1], "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") &&
		      get_response(&c[1], &r) && closed_within(&c[1], TIMEOUT_MS), "close");
	CHECK(stop(&s), "no exit after SIGTERM");
	for (i = 1; i < 4; i++)
		hang_up(&c[i]);
	CHECK_CLEAN_EXIT(&s);
	CHECK(strstr(s.text, "audit (full): 0 findings"), "%s", s.text);
}

#define LOW_NOFILE 48

static void peak_descriptors_are_counted_at_the_limit(void)
{
	struct server s;
	struct client c[LOW_NOFILE + 8];
	long long deadline = now_ms() + TIMEOUT_MS;
	int i, n = 0, most = 0;

	/* A table full to RLIMIT_NOFILE leaves no descriptor to open /proc/self/fd with.
	 * One loop: the count is the point here, not how threads share the table.
	 * Process descriptors: direct slots never fill the process's table. */
	static const char *const one_thread[] = { "--threads", "1", "--no-direct", NULL };

	server_nofile = LOW_NOFILE;
	i = start(&s, one_thread);
	server_nofile = 0;
	CHECK(i, "no 'listening on' line: %s", s.text);
	for (n = 0; n < LOW_NOFILE + 8; n++)
		CHECK(dial(&s, &c[n]), "connect %d", n);
	/* Full: as many as the limit allows (more, if a descriptor predates it). */
	while ((most = server_fds(&s)) < LOW_NOFILE && now_ms() < deadline) {
		struct pollfd p = { .fd = -1 };

		poll(&p, 0, 5);
	}
	CHECK(most >= LOW_NOFILE, "%d fds, never the limit %d", most, LOW_NOFILE);
	/* A descriptor older than the limit lets one more in, maybe a moment later: the most seen. */
	for (deadline = now_ms() + 200; now_ms() < deadline;) {
		struct pollfd p = { .fd = -1 };
		int fds = server_fds(&s);

		most = fds > most ? fds : most;
		poll(&p, 0, 5);
	}
	for (i = 0; i < n; i++)
		hang_up(&c[i]);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK(summary_value(&s, "at start, ") == most ||
		      strstr(s.text, "could not count"),
	      "/proc showed %d; summary:\n%s", most, s.text);
}

/* Descriptors "at start" and "at exit" in the summary are the same number. */
static bool fds_back_at_exit(const struct server *s)
{
	const char *p = strstr(s->text, "descriptors: ");
	int start, peak, end;

	return p && sscanf(p, "descriptors: %d at start, %d at peak, %d at exit", &start, &peak,
			   &end) == 3 && start == end;
}

/* "direct slots: P at peak, E at exit (...)": P, or -1 (none: --no-direct). */
static int summary_slots(const struct server *s, int *at_exit)
{
	const char *p = strstr(s->text, "direct slots: ");
	int peak;

	if (!p || sscanf(p, "direct slots: %d at peak, %d at exit", &peak, at_exit) != 2)
		return -1;
	return peak;
}

static bool no_direct_run(void)
{
	return extra_arg("--no-direct");
}

/*
 * Connections are slots of each loop's direct table: the process's own table
 * does not grow with them, the kernel caps the table at RLIMIT_NOFILE (and
 * closes a connection that finds it full, as --max-conns would), and the
 * summary counts the slots and finds them all free at exit.
 */
static void connections_are_direct_slots_capped_by_the_limit(void)
{
	static const char *const one_thread[] = { "--threads", "1", NULL };
	struct server s;
	struct client c[LOW_NOFILE], extra;
	struct response r;
	int i, n, base, peak, at_exit = -1;
	char path[64];
	struct dirent *d;
	DIR *dir;

	if (no_direct_run()) {
		printf("SKIP %s: run with --no-direct\n", test_name);
		return;
	}
	server_nofile = LOW_NOFILE;
	i = start(&s, one_thread);
	server_nofile = 0;
	CHECK(i, "no 'listening on' line: %s", s.text);
	base = server_fds(&s);
	for (n = 0; n < LOW_NOFILE; n++)
		CHECK(dial(&s, &c[n]), "connect %d", n);
	CHECK(wait_server_fds(&s, base + LOW_NOFILE), "%d descriptors and slots, %d before",
	      server_fds(&s), base);
	/* None of them in /proc/PID/fd. */
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)s.pid);
	dir = opendir(path);
	CHECK(dir, "%s", path);
	for (i = 0; (d = readdir(dir));)
		i += d->d_name[0] != '.';
	closedir(dir);
	CHECK(i < LOW_NOFILE / 2, "%d descriptors in /proc/PID/fd", i);
	/* The table is full: one more is closed at once, unanswered. */
	CHECK(dial(&s, &extra), "connect");
	CHECK(closed_within(&extra, TIMEOUT_MS), "a connection beyond the table was kept");
	hang_up(&extra);
	/* Slots free again: served. */
	for (i = 0; i < 8; i++)
		hang_up(&c[i]);
	CHECK(wait_server_fds(&s, base + LOW_NOFILE - 8), "%d descriptors and slots, %d before",
	      server_fds(&s), base);
	CHECK(dial(&s, &extra) && send_str(&extra, get_root) && get_response(&extra, &r) &&
		      r.status == 200, "not served once slots were free");
	CHECK(send_str(&c[8], get_root) && get_response(&c[8], &r) && r.status == 200, "client 8");
	hang_up(&extra);
	for (i = 8; i < n; i++)
		hang_up(&c[i]);
	CHECK(wait_server_fds(&s, base), "still %d, %d before", server_fds(&s), base);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
	peak = summary_slots(&s, &at_exit);
	CHECK(peak == LOW_NOFILE && at_exit == 0, "%s", s.text);
	CHECK(fds_back_at_exit(&s), "%s", s.text);
}

/*
 * A port below the kernel's ephemeral range (ip_local_port_range, 32768 and
 * up by default), free when tried: a port bound and closed here and taken from
 * that range could go to another test's client or listener before the server
 * binds it, and a connect would then reach someone else. @attempt spreads the
 * tries; the caller tries again if the server cannot bind.
 */
static unsigned short quiet_port(int attempt)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int i;

	for (i = 0; i < 200; i++) {
		unsigned short port = (unsigned short)(20000 + ((unsigned)getpid() * 7919u +
								(unsigned)(attempt * 200 + i) * 101u) % 12000u);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool free_now;

		if (fd < 0)
			return 0;
		in.sin_port = htons(port);
		free_now = bind(fd, (struct sockaddr *)&in, sizeof(in)) == 0;
		close(fd);
		if (free_now)
			return port;
	}
	return 0;
}

/*
 * Starts the server on @port with standard input, output and error closed and
 * waits until a connect succeeds: 1; 0 if it exited first (its port taken
 * in between: the caller tries another); -1 when it could not start or never
 * listened (the failure reported).
 */
static int start_with_stdio_closed(struct server *s, unsigned short port)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&s->addr;
	long long deadline;
	char port_arg[16];
	int fd;

	memset(s, 0, sizeof(*s));
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	in->sin_port = htons(port);
	s->addrlen = sizeof(*in);
	snprintf(port_arg, sizeof(port_arg), "%u", port);
	fflush(stdout);
	s->pid = fork();
	if (s->pid == 0) {
		const char *argv[8 + MAX_EXTRA_ARGS] = { "ringscope-httpd", "--port", port_arg,
							 "--threads", "1" };
		struct rlimit rl = { LOW_NOFILE, LOW_NOFILE };
		int k;

		for (k = 0; extra_args[k]; k++)
			argv[5 + k] = extra_args[k];
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(126);
		close(STDIN_FILENO);
		close(STDOUT_FILENO);
		close(STDERR_FILENO);
		execv(httpd_path(), (char *const *)argv);
		_exit(127);
	}
	CHECK_OR_RETURN(-1, s->pid > 0, "fork: %s", strerror(errno));
	s->out = open("/dev/null", O_RDONLY | O_CLOEXEC); /* for reap() and kill_running() */
	running = s;
	deadline = now_ms() + TIMEOUT_MS;
	while ((fd = connect_to(s)) < 0 && now_ms() < deadline) {
		struct pollfd p = { .fd = -1 };

		if (waitpid(s->pid, &s->status, WNOHANG) != 0) {
			/* Status 1 is a setup that failed, as a taken port's bind
			 * does; a signal, or our 126 and 127, is no port's fault. */
			CHECK_OR_RETURN(-1, WIFEXITED(s->status) && WEXITSTATUS(s->status) == 1,
					"could not start: status %#x", s->status);
			close(s->out);
			running = NULL;
			return 0;
		}
		poll(&p, 0, 5);
	}
	CHECK_OR_RETURN(-1, fd >= 0, "never listened on port %u", port);
	close(fd);
	return 1;
}

/*
 * Started with standard input, output and error closed, the server still
 * serves after its warnings (the accepts that fail at the descriptor limit):
 * they once went into the signal pipe, whose write end had taken number 2,
 * and read as signals, shut the server down. Its stdout is gone, so the port
 * is chosen here and the server is known to listen when a connect succeeds.
 */
static void closed_stdio_is_no_signal_pipe(void)
{
	struct server s;
	struct client c[LOW_NOFILE + 16];
	struct response r = { 0 };
	long long deadline;
	int attempt, i, n, started = 0;

	for (attempt = 0; attempt < 5 && started == 0; attempt++) {
		unsigned short port = quiet_port(attempt);

		CHECK(port != 0, "no free port below the ephemeral range");
		started = start_with_stdio_closed(&s, port);
	}
	if (started < 0)
		return;
	CHECK(started, "the server exited before listening, on 5 ports in turn: status %#x", s.status);
	/* More than its table or its descriptors hold: accepts fail, and it says so. */
	for (n = 0; n < LOW_NOFILE + 16; n++)
		CHECK(dial(&s, &c[n]), "connect %d", n);
	for (deadline = now_ms() + 200; now_ms() < deadline;) {
		struct pollfd p = { .fd = -1 };

		poll(&p, 0, 5);
	}
	for (i = 0; i < n; i++)
		hang_up(&c[i]);
	CHECK(waitpid(s.pid, &s.status, WNOHANG) == 0,
	      "it stopped by itself (its warnings read as signals): status %#x", s.status);
	deadline = now_ms() + TIMEOUT_MS;
	while (!(dial(&s, &c[0]) && send_str(&c[0], get_root) && get_response(&c[0], &r) &&
		 r.status == 200) && now_ms() < deadline) {
		struct pollfd p = { .fd = -1 };

		if (c[0].fd >= 0)
			hang_up(&c[0]);
		poll(&p, 0, 5);
	}
	CHECK(r.status == 200, "not serving after its warnings");
	hang_up(&c[0]);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK(WIFEXITED(s.status) && WEXITSTATUS(s.status) == 0, "exit status %#x", s.status);
}

#define N_SLOW 200
#define SLOW_IDLE_MS 2000 /* 1.7 s of slack for the answered client, every 300 ms */
#define SLOW_TICK_MS 400

static void slowloris_clients_are_cut_at_the_idle_deadline(void)
{
	static const char *const args[] = { "--idle-timeout", "2000", "--max-conns", "4096", NULL };
	/* One byte per tick, never the blank line that ends the headers. */
	static const char slow[] = "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	static struct client c[N_SLOW];
	static long long connected[N_SLOW], cut[N_SLOW];
	struct server s;
	struct client good;
	struct response r;
	long long t0, next_tick, next_good, end;
	unsigned sent = 0;
	int i, base, open_n = N_SLOW, good_n;

	CHECK(start(&s, args), "no 'listening on' line: %s", s.text);
	base = server_fds(&s);
	for (i = 0; i < N_SLOW; i++) {
		connected[i] = now_ms(); /* before: the server may accept it before connect() returns */
		CHECK(dial(&s, &c[i]), "connect %d: %s", i, strerror(errno));
		cut[i] = 0;
		CHECK(send(c[i].fd, slow, 1, MSG_NOSIGNAL) == 1, "first byte %d", i);
	}
	sent = 1;
	/* A client that completes a request every 300 ms: each answer re-arms its deadline. */
	CHECK(dial(&s, &good) && send_str(&good, get_root) && get_response(&good, &r) &&
		      r.status == 200, "the answered client's first request");
	good_n = 1;
	t0 = now_ms();
	next_tick = t0 + SLOW_TICK_MS;
	next_good = t0 + 300;
	end = t0 + SLOW_IDLE_MS + 3000;
	/*
	 * Until every slow client is cut, and the answered one has made a request
	 * past the deadline its first answer armed (its eighth, at t0 + 2100 ms):
	 * the slow ones connected before it, and may all be cut sooner.
	 */
	while ((open_n > 0 || good_n < 8) && now_ms() < end) {
		struct pollfd p[N_SLOW];
		long long now = now_ms(), wake = next_tick < next_good ? next_tick : next_good;
		int n;

		if (now >= next_good) {
			CHECK(send_str(&good, get_root) && get_response(&good, &r) && r.status == 200,
			      "the answered client was cut after %lld ms", now - t0);
			good_n++;
			next_good += 300;
			continue;
		}
		if (now >= next_tick) {
			for (i = 0; i < N_SLOW; i++)
				if (!cut[i] && send(c[i].fd, slow + sent % (sizeof(slow) - 1), 1,
						    MSG_NOSIGNAL) != 1)
					cut[i] = now; /* reset: it was closed */
			sent++;
			next_tick += SLOW_TICK_MS;
			continue;
		}
		for (i = 0; i < N_SLOW; i++)
			p[i] = (struct pollfd){ .fd = cut[i] ? -1 : c[i].fd, .events = POLLIN };
		n = poll(p, N_SLOW, (int)(wake - now));
		for (i = 0; n > 0 && i < N_SLOW; i++) {
			char byte;

			if (!p[i].revents)
				continue;
			/* The server sends nothing to a client it cuts: EOF or a reset. */
			CHECK(recv(c[i].fd, &byte, 1, MSG_DONTWAIT) <= 0, "client %d got bytes", i);
			cut[i] = now_ms();
		}
		for (open_n = 0, i = 0; i < N_SLOW; i++)
			open_n += !cut[i];
	}
	CHECK(open_n == 0, "%d of %d slow clients still connected after %lld ms", open_n, N_SLOW,
	      now_ms() - t0);
	for (i = 0; i < N_SLOW; i++) {
		/* Not before the deadline (CLOCK_MONOTONIC_COARSE slack), nor long after it. */
		CHECK(cut[i] - connected[i] >= SLOW_IDLE_MS - 20, "client %d cut after %lld ms", i,
		      cut[i] - connected[i]);
		CHECK(cut[i] - connected[i] <= SLOW_IDLE_MS + 1500, "client %d cut after %lld ms", i,
		      cut[i] - connected[i]);
		hang_up(&c[i]);
	}
	CHECK(good_n >= 8, "the answered client made %d requests", good_n);
	CHECK(send_str(&good, get_root) && get_response(&good, &r) && r.status == 200,
	      "the answered client was cut");
	hang_up(&good);
	/* Nothing leaks: the server is back to its descriptors before the clients came. */
	CHECK(wait_server_fds(&s, base), "still %d fds, %d before", server_fds(&s), base);
	CHECK(stop(&s), "no exit after SIGTERM");
	CHECK_CLEAN_EXIT(&s);
	CHECK(summary_value(&s, "idle timeouts ") == N_SLOW, "%s", s.text);
	CHECK(fds_back_at_exit(&s), "%s", s.text);
}

/*
 * When a child exits, seen by a thread that polls its pidfd (without reaping
 * it): the time the test measures is the server's, not the driver's, which
 * may be busy checking a thousand clients when the exit comes.
 */
struct exit_watch {
	pthread_t thread;
	int pidfd;
	long long at; /* now_ms() of the exit, or -1 if not seen within 30 s */
};

static void *watch_exit(void *arg)
{
	struct exit_watch *w = arg;
	struct pollfd p = { .fd = w->pidfd, .events = POLLIN };
	int n;

	do
		n = poll(&p, 1, 30000);
	while (n < 0 && errno == EINTR);
	w->at = n > 0 ? now_ms() : -1;
	return NULL;
}

static bool exit_watch_start(struct exit_watch *w, pid_t pid)
{
	w->at = -1;
	w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (w->pidfd < 0)
		return false;
	if (pthread_create(&w->thread, NULL, watch_exit, w) != 0) {
		close(w->pidfd);
		return false;
	}
	return true;
}

static long long exit_watch_end(struct exit_watch *w)
{
	pthread_join(w->thread, NULL);
	close(w->pidfd);
	return w->at;
}

#define N_GRACE 1000
#define GRACE_MS 2000

static void graceful_close_with_1000_connections_mid_request(void)
{
	static const char *const args[] = { "--grace", "2000", "--max-conns", "4096", NULL };
	static const char first_and_half[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\n";
	static const char rest[] = "Host: t\r\n\r\n";
	static struct client c[N_GRACE];
	struct server s;
	struct response r;
	struct exit_watch watch;
	long long t_kill, took, exited;
	int i, third = N_GRACE / 3;

	CHECK(start(&s, args), "no 'listening on' line: %s", s.text);
	/*
	 * Each sends a request and half of the next in one write; once the
	 * first response is back, the server holds the half: mid-request.
	 */
	for (i = 0; i < N_GRACE; i++) {
		CHECK(dial(&s, &c[i]), "connect %d: %s", i, strerror(errno));
		CHECK(send_str(&c[i], first_and_half), "send %d", i);
	}
	for (i = 0; i < N_GRACE; i++)
		CHECK(get_response(&c[i], &r) && r.status == 200 && !r.close, "client %d", i);
	/* A third complete their request right before the signal, */
	for (i = 0; i < third; i++)
		CHECK(send_str(&c[i], rest), "client %d", i);
	CHECK(exit_watch_start(&watch, s.pid), "pidfd_open: %s", strerror(errno));
	t_kill = now_ms();
	CHECK(kill(s.pid, SIGTERM) == 0, "kill");
	/* a third once the server has stopped accepting, on every loop, */
	CHECK(wait_refused(&s), "still accepting after SIGTERM");
	for (i = third; i < 2 * third; i++)
		CHECK(send_str(&c[i], rest), "client %d", i);
	/* and all of those get their whole response, then the server closes. */
	for (i = 0; i < 2 * third; i++) {
		CHECK(get_response(&c[i], &r), "client %d: no response", i);
		CHECK(r.status == 200 && !strcmp(r.body, BODY), "client %d: status %d", i,
		      r.status);
		CHECK(r.close || i < third, "client %d: no Connection: close", i);
		CHECK(closed_within(&c[i], TIMEOUT_MS), "client %d kept", i);
	}
	/* The last third never finish: cut when the grace ends, with nothing sent. */
	for (; i < N_GRACE; i++)
		CHECK(closed_within(&c[i], TIMEOUT_MS), "client %d kept", i);
	CHECK(reap(&s), "no exit");
	exited = exit_watch_end(&watch);
	CHECK(exited >= 0, "the exit was not seen");
	took = exited - t_kill;
	printf("INFO %s: exited %lld ms after SIGTERM, grace %d ms\n", test_name, took, GRACE_MS);
	for (i = 0; i < N_GRACE; i++)
		hang_up(&c[i]);
	CHECK_CLEAN_EXIT(&s);
	/* Promptly: the cut ends it, not an idle deadline or a second grace. 500 ms
	 * of slack: cutting ~330 connections under ASan on a busy 2-core machine
	 * took 110-160 ms once (the fresh-clone check of the twenty-first pass). */
	CHECK(took <= GRACE_MS + 500, "exited %lld ms after SIGTERM, grace %d ms", took, GRACE_MS);
	CHECK(fds_back_at_exit(&s), "%s", s.text);
	/* More if a probe of wait_refused() reached a loop that had not stopped yet. */
	CHECK(summary_value(&s, "accepted ") >= N_GRACE, "%s", s.text);
	CHECK(summary_value(&s, "cut at the deadline ") == N_GRACE - 2 * third, "%s", s.text);
	CHECK(summary_value(&s, "requests: ") == N_GRACE + 2 * third, "%s", s.text);
}

#define N_SPREAD 64

static void threads_serve_from_every_loop(void)
{
	static const char *const args[] = { "--threads", "4", NULL };
	static struct client c[N_SPREAD];
	struct server s;
	struct response r;
	char path[64], *p;
	long long served[4];
	int i, tasks = 0;
	struct dirent *d;
	DIR *dir;

	CHECK(start(&s, args), "no 'listening on' line: %s", s.text);
	/* A thread per loop (a sanitizer may add one of its own). */
	snprintf(path, sizeof(path), "/proc/%d/task", (int)s.pid);
	dir = opendir(path);
	CHECK(dir, "%s: %s", path, strerror(errno));
	while ((d = readdir(dir)))
		tasks += d->d_name[0] != '.';
	closedir(dir);
	CHECK(tasks >= 4, "%d threads", tasks);
	/* SO_REUSEPORT spreads connections by their ports: each listener gets some of 64. */
	/*
	 * Half send a request and half of the next in one write: once the first
	 * response is back, the server holds the half (mid-request). The others
	 * are idle when the signal comes.
	 */
	for (i = 0; i < N_SPREAD; i++) {
		CHECK(dial(&s, &c[i]), "connect %d", i);
		CHECK(send_str(&c[i], i < N_SPREAD / 2 ? "GET / HTTP/1.1\r\nHost: t\r\n\r\n"
							 "GET / HTTP/1.1\r\n" : get_root) &&
			      get_response(&c[i], &r) && r.status == 200, "client %d", i);
	}
	CHECK(kill(s.pid, SIGTERM) == 0, "kill");
	CHECK(wait_refused(&s), "a loop still accepts after SIGTERM");
	for (i = N_SPREAD / 2; i < N_SPREAD; i++)
		CHECK(closed_within(&c[i], TIMEOUT_MS), "idle client %d kept", i);
	for (i = 0; i < N_SPREAD / 2; i++) {
		CHECK(send_str(&c[i], "Host: t\r\n\r\n") && get_response(&c[i], &r) &&
			      r.status == 200 && r.close, "client %d", i);
		CHECK(closed_within(&c[i], TIMEOUT_MS), "client %d kept", i);
	}
	CHECK(reap(&s), "no exit");
	for (i = 0; i < N_SPREAD; i++)
		hang_up(&c[i]);
	CHECK_CLEAN_EXIT(&s);
	CHECK(fds_back_at_exit(&s), "%s", s.text);
	CHECK(summary_value(&s, "requests: ") == N_SPREAD + N_SPREAD / 2, "%s", s.text);
	p = strstr(s.text, "requests served by each: ");
	CHECK(p && sscanf(p, "requests served by each: %lld, %lld, %lld, %lld", &served[0],
			  &served[1], &served[2], &served[3]) == 4, "%s", s.text);
	for (i = 0; i < 4; i++)
		CHECK(served[i] > 0, "loop %d served nothing: %s", i, s.text);
}

static bool kernel_has(struct io_uring_probe *p, int op, const char *name)
{
	if (p && io_uring_opcode_supported(p, op))
		return true;
	printf("SKIP check_httpd: kernel lacks %s\n", name);
	return false;
}

/* @name is one of the comma-separated names in @list. */
static bool listed(const char *list, const char *name)
{
	size_t len = strlen(name);
	const char *p;

	for (p = list; (p = strstr(p, name)); p += len)
		if ((p == list || p[-1] == ',') && (p[len] == 0 || p[len] == ','))
			return true;
	return false;
}

int main(void)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
#define T(f) { #f, f }
		T(get_root_answers_200),
		T(keep_alive_serves_several_requests),
		T(keep_alive_requests_share_one_receive),
		T(pipelined_requests_beyond_the_buffer_are_answered_in_order),
		T(connection_close_is_honoured),
		T(bad_request_gets_400_and_close),
		T(content_length_must_be_a_single_zero),
		T(oversize_headers_get_431),
		T(oversize_pipelined_request_gets_its_431),
		T(bare_lf_or_cr_line_ends_get_400),
		T(half_closed_client_gets_every_answer),
		T(option_errors_exit_2),
		T(idle_client_is_closed),
		T(disconnect_mid_request_releases_its_scope),
		T(sigterm_mid_request_is_graceful),
		T(second_signal_closes_at_once),
		T(two_signals_at_once_close_at_once),
		T(sighup_shuts_down_like_sigterm),
		T(max_conns_closes_the_excess),
		T(serves_ipv6_and_unix_sockets),
		T(full_audit_stays_silent),
		T(peak_descriptors_are_counted_at_the_limit),
		T(connections_are_direct_slots_capped_by_the_limit),
		T(closed_stdio_is_no_signal_pipe),
		T(slowloris_clients_are_cut_at_the_idle_deadline),
		T(graceful_close_with_1000_connections_mid_request),
		T(threads_serve_from_every_loop),
	};
	const char *only = getenv("HTTPD_TEST");
	struct io_uring_probe *probe = io_uring_get_probe();
	struct rlimit rl;
	unsigned i, ran = 0, n_failed = 0;
	bool ok;

	ok = kernel_has(probe, IORING_OP_SOCKET, "IORING_OP_SOCKET") &&
	     kernel_has(probe, IORING_OP_ACCEPT, "IORING_OP_ACCEPT");
	if (probe)
		io_uring_free_probe(probe);
	if (!ok)
		return 77;
	signal(SIGPIPE, SIG_IGN);
	/* 1,000 clients and their server: more descriptors than the usual soft limit. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096 && rl.rlim_max > rl.rlim_cur) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getenv("HTTPD_ARGS")) {
		char *words = strdup(getenv("HTTPD_ARGS")), *save = NULL, *w;
		int n = 0;

		for (w = words ? strtok_r(words, " ", &save) : NULL; w && n < MAX_EXTRA_ARGS;
		     w = strtok_r(NULL, " ", &save))
			extra_args[n++] = w;
	}
	snprintf(sock_dir, sizeof(sock_dir), "/tmp/httpd-test.XXXXXX");
	if (!mkdtemp(sock_dir)) {
		perror("mkdtemp");
		return 99;
	}
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		long long t0 = now_ms();

		if (only && !listed(only, tests[i].name))
			continue;
		test_name = tests[i].name;
		failed = false;
		tests[i].fn();
		kill_running();
		ran++;
		n_failed += failed;
		printf("%s %s (%lld ms)\n", failed ? "FAIL" : "PASS", test_name, now_ms() - t0);
		fflush(stdout);
	}
	rmdir(sock_dir);
	printf("%u%%: httpd checks: %u, failures: %u\n", ran ? 100 * (ran - n_failed) / ran : 0,
	       ran, n_failed);
	return n_failed ? 1 : 0;
}
