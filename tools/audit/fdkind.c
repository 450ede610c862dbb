/* SPDX-License-Identifier: MIT */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fdkind.h"

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A path's kind by what the file is (0: unknown, guess from the name). */
static const char *path_kind(const char *t, mode_t mode)
{
	if (S_ISDIR(mode))
		return "dir";
	if (S_ISCHR(mode) || S_ISBLK(mode))
		return "device";
	if (S_ISFIFO(mode))
		return "pipe"; /* a named one */
	if (S_ISSOCK(mode))
		return "socket";
	if (mode)
		return "file"; /* a shm_open(3) file in /dev/shm too */
	return starts(t, "/dev/") ? "device" : "file";
}

const char *fdkind_of(const char *t, mode_t mode)
{
	static const struct {
		const char *prefix, *kind;
	} map[] = {
		{ "socket:[", "socket" },
		{ "pipe:[", "pipe" },
		{ "anon_inode:[eventfd]", "eventfd" },
		{ "anon_inode:[io_uring]", "io_uring" },
		{ "anon_inode:[timerfd]", "timerfd" },
		{ "anon_inode:[signalfd]", "signalfd" },
		{ "anon_inode:[eventpoll]", "epoll" },
		{ "anon_inode:inotify", "inotify" },
		{ "anon_inode:[fanotify]", "fanotify" },
		{ "anon_inode:[pidfd]", "pidfd" },
		{ "anon_inode:[userfaultfd]", "userfaultfd" },
		{ "anon_inode:", "anon_inode" },
		{ "/memfd:", "memfd" },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (starts(t, map[i].prefix))
			return map[i].kind;
	if (t[0] == '/' || strcmp(t, FD_TARGET_TOO_LONG) == 0)
		return path_kind(t, mode);
	return "other";
}

static const char *line_value(const char *line, const char *key)
{
	size_t n = strlen(key);

	if (strncmp(line, key, n) != 0)
		return NULL;
	line += n;
	while (*line == ' ' || *line == '\t')
		line++;
	return line;
}

static bool octal(char c)
{
	return c >= '0' && c <= '7';
}

/*
 * A slot's path as the kernel prints it with seq_file_path(m, f, " \t\n\\")
 * (io_uring/fdinfo.c): a space, tab, newline or backslash in the name is
 * written as a backslash and three octal digits. Decodes @len bytes of @s
 * into @out (at most @cap - 1 bytes, NUL-terminated); returns the length.
 */
static int unmangle(const char *s, int len, char *out, int cap)
{
	int n = 0;

	for (int i = 0; i < len && n < cap - 1; i++) {
		if (s[i] == '\\' && i + 3 < len && s[i + 1] >= '0' && s[i + 1] <= '3' &&
		    octal(s[i + 2]) && octal(s[i + 3])) {
			out[n++] = (char)((s[i + 1] - '0') << 6 | (s[i + 2] - '0') << 3 | (s[i + 3] - '0'));
			i += 3;
		} else {
			out[n++] = s[i];
		}
	}
	out[n] = '\0';
	return n;
}

void fdinfo_parse(const char *text, struct fdinfo_basic *out,
		  void (*slot_cb)(void *arg, int slot, const char *path, int len),
		  void *arg)
{
	bool in_files = false;
	const char *v;

	out->flags = 0;
	out->have_flags = false;
	out->pos = -1;
	out->ino = 0;
	out->user_files = -1;
	for (const char *l = text; l && *l;) {
		const char *end = strchr(l, '\n');
		int len = end ? (int)(end - l) : (int)strlen(l);

		if (in_files && (*l == ' ' || (*l >= '0' && *l <= '9'))) {
			/* "%5u: path" */
			char *colon;
			long slot = strtol(l, &colon, 10);

			if (colon != l && *colon == ':' && colon - l < len) {
				const char *p = colon + 1;

				while (*p == ' ')
					p++;
				int plen = len - (int)(p - l);
				if (slot_cb && !(plen == 6 && !strncmp(p, "<none>", 6))) {
					char path[PATH_MAX];
					int n = unmangle(p, plen, path, (int)sizeof(path));

					slot_cb(arg, (int)slot, path, n);
				}
			}
		} else {
			in_files = false;
			if ((v = line_value(l, "flags:"))) {
				out->flags = strtoull(v, NULL, 8);
				out->have_flags = true;
			} else if ((v = line_value(l, "pos:"))) {
				out->pos = strtoll(v, NULL, 10);
			} else if ((v = line_value(l, "ino:"))) {
				out->ino = strtoull(v, NULL, 10);
			} else if ((v = line_value(l, "UserFiles:"))) {
				out->user_files = (int)strtol(v, NULL, 10);
				in_files = true;
			}
		}
		l = end ? end + 1 : NULL;
	}
}
