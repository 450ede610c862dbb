#!/bin/sh
# The same checks with connections as process descriptors (--no-direct): the
# server's path where the kernel has no direct table to accept into.
HTTPD_ARGS=--no-direct exec "${builddir:-.}/tests/httpd/check_httpd" "$@"
