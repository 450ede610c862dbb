/* SPDX-License-Identifier: MIT */
/*
 * Text from the audited side (file names, link targets, symbols) made safe
 * for a terminal: whoever names a file must not drive the auditor's screen.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"

#define VIS_BUFS 8
#define VIS_LEN	 (4 * 4096 + 64)

/* Length of the valid UTF-8 sequence at @p that encodes no C1 control, or 0. */
size_t vis_utf8_len(const unsigned char *p)
{
	size_t n;
	unsigned cp;

	if (p[0] < 0xc2 || p[0] > 0xf4)
		return 0;
	n = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
	cp = p[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* U+0080-U+009F are the C1 controls (CSI is U+009B); also refuse overlongs and surrogates. */
	if (cp < 0xa0 || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp < 0xe000))
		return 0;
	return n;
}

const char *vis(const char *s)
{
	static char bufs[VIS_BUFS][VIS_LEN];
	static unsigned next;
	static const char hex[] = "0123456789abcdef";
	char *out = bufs[next++ % VIS_BUFS], *o = out;
	const unsigned char *p = (const unsigned char *)(s ? s : "(null)");

	while (*p && o < out + VIS_LEN - 8) {
		size_t n;

		if (*p == '\\') {
			*o++ = '\\';
			*o++ = '\\';
			p++;
		} else if (*p >= 0x20 && *p < 0x7f) {
			*o++ = (char)*p++;
		} else if (*p >= 0x80 && (n = vis_utf8_len(p))) {
			memcpy(o, p, n);
			o += n;
			p += n;
		} else {
			*o++ = '\\';
			*o++ = 'x';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
			p++;
		}
	}
	if (*p)
		strcpy(o, "...");
	else
		*o = '\0';
	return out;
}

/*
 * The option getopt_long() just refused, escaped for a message: the letter of
 * a short option, which may sit inside a cluster (-xh) whose element optind
 * has not moved past yet; else the element itself. *with_value: a
 * --flag=value given to an option that takes none.
 */
const char *vis_bad_option(char *const *argv, int optind_now, int optopt_now, bool *with_value)
{
	const char *arg = optind_now > 1 ? argv[optind_now - 1] : "";
	char letter[3] = { '-', (char)optopt_now, '\0' };

	*with_value = optopt_now && arg[0] == '-' && arg[1] == '-' && strchr(arg, '=');
	return optopt_now && !*with_value ? vis(letter) : vis(arg);
}
