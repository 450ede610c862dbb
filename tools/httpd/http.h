/* SPDX-License-Identifier: MIT */
#ifndef RSC_HTTPD_HTTP_H
#define RSC_HTTPD_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* Request line and headers, blank line included: more is a 431. */
#define HTTP_HEADER_MAX 8192

/* The body of GET /, the same in the benchmark's nginx and liburing responder. */
#define HTTP_BODY "Hello from ringscope\n"

enum http_status {
	HTTP_200 = 0,
	HTTP_400,
	HTTP_404,
	HTTP_405,
	HTTP_431,
	HTTP__COUNT
};

struct http_request {
	size_t len;		 /* bytes it took: request line through blank line */
	enum http_status status; /* the response it gets */
	bool close;		 /* close the connection after the response */
	bool head;		 /* a HEAD: the response has no body (RFC 9110 9.3.2) */
};

/*
 * Look at the @len bytes received so far. Returns 0 if the headers are not
 * complete yet (and may still be), 1 with *@req filled otherwise. Bad input
 * is not an error of the call: it is a request whose answer is 400 or 431
 * and whose connection closes.
 */
int http_parse(const char *buf, size_t len, struct http_request *req);

/* The fixed bytes of the response for @status, with or without "Connection: close";
 * for a HEAD (@head) its head alone, Content-Length still the body's. */
const char *http_response(enum http_status status, bool close, bool head, unsigned *len);

/* "200", "400", ... for the summary. */
const char *http_status_code(enum http_status status);

#endif
