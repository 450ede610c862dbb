#!/bin/sh
# The same checks with connections as process descriptors (--no-direct) and a
# recv per request (--no-multishot): the server's path on a kernel before 6.0,
# which has neither a direct table to accept into nor multishot receives; and
# with connections accepted before their request arrives (--no-defer-accept).
HTTPD_ARGS="--no-direct --no-multishot --no-defer-accept" exec "${builddir:-.}/tests/httpd/check_httpd" "$@"
