/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"

/*
 * Just enough HTTP/1.1 (RFC 9112) for a fixed response: a request line, header
 * lines, no body. Anything else is answered with 400 and the connection closes,
 * since the server could not tell where the next request would start.
 */

static const struct {
	const char *code, *reason, *body;
} statuses[HTTP__COUNT] = {
	[HTTP_200] = { "200", "OK", HTTP_BODY },
	[HTTP_400] = { "400", "Bad Request", "bad request\n" },
	[HTTP_404] = { "404", "Not Found", "not found\n" },
	[HTTP_405] = { "405", "Method Not Allowed", "only GET\n" },
	[HTTP_431] = { "431", "Request Header Fields Too Large", "headers too large\n" },
};

/*
 * Built once, before the first is sent, whichever thread asks first (the
 * servers run a loop per thread): every response is a constant, sent
 * straight from here.
 */
static char responses[HTTP__COUNT][2][256];
static unsigned response_len[HTTP__COUNT][2];
static pthread_once_t responses_once = PTHREAD_ONCE_INIT;

static void build_responses(void)
{
	int st, close;

	for (st = 0; st < HTTP__COUNT; st++)
		for (close = 0; close < 2; close++)
			response_len[st][close] = (unsigned)snprintf(
				responses[st][close], sizeof(responses[st][close]),
				"HTTP/1.1 %s %s\r\nContent-Type: text/plain\r\n"
				"Content-Length: %zu\r\n%s%s\r\n%s",
				statuses[st].code, statuses[st].reason, strlen(statuses[st].body),
				st == HTTP_405 ? "Allow: GET\r\n" : "",
				close ? "Connection: close\r\n" : "", statuses[st].body);
}

const char *http_response(enum http_status st, bool close, bool head, unsigned *len)
{
	pthread_once(&responses_once, build_responses);
	/* The body is the constant's tail: a HEAD's answer stops before it. */
	*len = response_len[st][close] - (head ? (unsigned)strlen(statuses[st].body) : 0);
	return responses[st][close];
}

const char *http_status_code(enum http_status st)
{
	return statuses[st].code;
}

/* RFC 9110 tchar: what a method or a header name is made of. */
static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static size_t token_len(const char *p, const char *end)
{
	const char *s = p;

	while (p < end && is_tchar(*p))
		p++;
	return (size_t)(p - s);
}

/* Does the comma-separated list [v, end) hold @token (any case)? */
static bool list_has(const char *v, const char *end, const char *token)
{
	size_t n = strlen(token);

	while (v < end) {
		const char *comma = memchr(v, ',', (size_t)(end - v));
		const char *e = comma ? comma : end;

		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - v) == n && !strncasecmp(v, token, n))
			return true;
		v = comma ? comma + 1 : end;
	}
	return false;
}

/*
 * Is [v, end) one Content-Length of zero (1*DIGIT, all '0', OWS around)?
 * A list ("0, 5"), a sign or any other length is not: with no bodies read
 * here, the bytes it announces would be taken for the next request.
 */
static bool is_zero_length(const char *v, const char *end)
{
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (v == end)
		return false;
	for (; v < end; v++)
		if (*v != '0')
			return false;
	return true;
}

static bool name_is(const char *name, size_t len, const char *want)
{
	return len == strlen(want) && !strncasecmp(name, want, len);
}

/* A bare LF (not after a CR), or a bare CR (followed by anything but an LF)? */
static bool has_bare_lf_or_cr(const char *buf, size_t len)
{
	const char *p = buf, *c;

	while ((c = memchr(p, '\n', len - (size_t)(p - buf)))) {
		if (c == buf || c[-1] != '\r')
			return true;
		p = c + 1;
	}
	/* A CR in the last byte may yet be followed by its LF. */
	for (p = buf; (c = memchr(p, '\r', len - (size_t)(p - buf))); p = c + 1)
		if (c + 1 < buf + len && c[1] != '\n')
			return true;
	return false;
}

/*
 * The first CRLF CRLF, as memmem would find it, but a memchr per line: the
 * pattern ends at an LF, so only the LFs need looking at (memmem's general
 * search was the costliest part of a keep-alive request's parse).
 */
static const char *head_end(const char *buf, size_t len)
{
	const char *p = buf + 3, *lim = buf + len, *lf;

	while (p < lim && (lf = memchr(p, '\n', (size_t)(lim - p)))) {
		if (lf[-1] == '\r' && lf[-2] == '\n' && lf[-3] == '\r')
			return lf - 3;
		p = lf + 1;
	}
	return NULL;
}

static int bad(struct http_request *req, enum http_status st, size_t len)
{
	req->status = st;
	req->close = true;
	req->head = false; /* not understood: answered in full, then closed */
	req->len = len;
	return 1;
}

int http_parse(const char *buf, size_t len, struct http_request *req)
{
	const char *end = head_end(buf, len), *p = buf, *eol;
	bool http10, keep_alive = false, host = false, is_get;
	size_t n;

	/*
	 * A bare LF or CR is no line end here: waiting for the CRLF CRLF a
	 * client that ends its lines so will never send would hold it until its
	 * deadline.
	 */
	if (has_bare_lf_or_cr(buf, end ? (size_t)(end + 4 - buf) : len))
		return bad(req, HTTP_400, end ? (size_t)(end + 4 - buf) : len);
	if (!end)
		return len >= HTTP_HEADER_MAX ? bad(req, HTTP_431, len) : 0;
	end += 2; /* the blank line's CRLF ends the last header line */
	req->len = (size_t)(end + 2 - buf);
	req->close = false;

	/* method SP request-target SP HTTP-version CRLF */
	n = token_len(p, end);
	is_get = n == 3 && !memcmp(p, "GET", 3);
	req->head = n == 4 && !memcmp(p, "HEAD", 4);
	if (!n || p[n] != ' ')
		return bad(req, HTTP_400, req->len);
	p += n + 1;
	/* No bare CR in the head (checked above): its first CR starts a CRLF. */
	eol = memchr(p, '\r', (size_t)(end - p));
	n = 0;
	while (p + n < eol && (unsigned char)p[n] > ' ' && p[n] != 0x7f)
		n++;
	if (!n || p + n + 9 != eol || memcmp(p + n, " HTTP/1.", 8) ||
	    (p[n + 8] != '0' && p[n + 8] != '1'))
		return bad(req, HTTP_400, req->len);
	http10 = p[n + 8] == '0';
	req->status = !is_get ? HTTP_405 : n == 1 && p[0] == '/' ? HTTP_200 : HTTP_404;
	p = eol + 2;

	/* field-name ":" OWS field-value OWS CRLF, until the blank line */
	while (p < end) {
		const char *name = p, *v;

		eol = memchr(p, '\r', (size_t)(end - p));
		n = token_len(p, eol);
		if (!n || p[n] != ':')
			return bad(req, HTTP_400, req->len); /* also obs-fold, a space before ':' */
		for (v = p + n + 1; v < eol; v++)
			if (((unsigned char)*v < ' ' && *v != '\t') || *v == 0x7f)
				return bad(req, HTTP_400, req->len);
		v = p + n + 1;
		if (name_is(name, n, "host")) {
			if (host)
				return bad(req, HTTP_400, req->len);
			host = true;
		} else if (name_is(name, n, "connection")) {
			req->close |= list_has(v, eol, "close");
			keep_alive |= list_has(v, eol, "keep-alive");
		} else if (name_is(name, n, "transfer-encoding") ||
			   (name_is(name, n, "content-length") && !is_zero_length(v, eol))) {
			/*
			 * No request bodies here: unread, one would be taken for the
			 * next request (RFC 9112 6.3). Repeated zeros agree; any other
			 * length, a list, or Transfer-Encoding at all is refused.
			 */
			return bad(req, HTTP_400, req->len);
		}
		p = eol + 2;
	}
	if (!http10 && !host)
		return bad(req, HTTP_400, req->len); /* RFC 9112 3.2: 1.1 needs Host */
	if (http10 && !keep_alive)
		req->close = true;
	return 1;
}
