#!/bin/sh
# The same suite without Check's fork per test, so a leak cannot hide in a child.
CK_FORK=no exec "${builddir:-.}/tests/check_ringscope" "$@"
