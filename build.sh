#!/bin/sh
# One entry point for the README's quick start:
#   ./build.sh demo   install build dependencies if missing, build, run the demo
#   ./build.sh check  the same, then the whole test suite: plain, under two
#                     kernel-feature masks (check-fallbacks), a 20 s soak,
#                     ASan+UBSan (debug; and release, without fault injection),
#                     valgrind, and a ThreadSanitizer run
#   ./build.sh bench  the benchmark harness (see bench/README.md)
set -eu
cd "$(dirname "$0")"
top=$(pwd)

# Debian 12 packages the build and the tests need.
PACKAGES="gcc make autoconf automake libtool pkg-config liburing-dev check valgrind libdw-dev python3 python3-prometheus-client systemtap-sdt-dev libuv1-dev g++ groff-base"

install_deps() {
	missing=""
	for p in $PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "build.sh: installing:$missing"
	if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
}

# configure into $1 with extra flags, once; later runs only rebuild.
configure_in() {
	dir=$1
	shift
	[ -x "$top/configure" ] || "$top/autogen.sh"
	mkdir -p "$dir"
	if [ ! -f "$dir/Makefile" ]; then
		(cd "$dir" && "$top/configure" --enable-werror "$@" ${CONFIGURE_FLAGS:-})
	fi
}

# The Check runner's own closing lines, from the logs automake keeps.
summary() {
	grep -h -e '^SKIP' -e '^[0-9]*%: Checks' "$1"/tests/*.log || true
}

jobs=$(nproc 2>/dev/null || echo 2)

case "${1:-}" in
demo)
	install_deps
	configure_in build --enable-fault-injection
	make -C build -j"$jobs" demo
	;;
check)
	install_deps
	configure_in build --enable-fault-injection
	make -C build -j"$jobs" check
	summary build
	# The Check suite again as on older kernels (missing:NAME masks): the
	# fallbacks run under every test, what a mask takes away says SKIP.
	make -C build check-fallbacks
	# Random scope programs under injected faults, checked by an oracle.
	make -C build soak SOAK_SECONDS=20
	# The release configuration (no fault injection) must build warning-free too.
	configure_in build-release
	make -C build-release -j"$jobs"
	configure_in build-asan --enable-sanitizers --enable-fault-injection
	make -C build-asan -j"$jobs" check
	summary build-asan
	# The soak again under ASan: a use after free of a pooled object that a
	# plain build survives is a report here (tests/README.md, "Soak").
	LSAN_OPTIONS=suppressions=$top/tests/lsan.supp make -C build-asan soak SOAK_SECONDS=20
	# The Check suites under ASan in a release configuration too: no debug
	# poisoning (only the handle model stands between a stale handle and the
	# object that reused its memory) and no fault injection (tests that need
	# it must say SKIP, not fail).
	configure_in build-asan-release --enable-sanitizers --disable-debug
	make -C build-asan-release -j"$jobs" tests/check_ringscope tests/cloexec_child
	(cd build-asan-release && LSAN_OPTIONS=suppressions=$top/tests/lsan.supp \
		CLOEXEC_CHILD=$(pwd)/tests/cloexec_child ./tests/check_ringscope)
	make -C build -j"$jobs" check-valgrind
	make -C build -j"$jobs" check-tsan
	echo "build.sh: all test runs passed (plain, under the fallback masks, soak, ASan+UBSan debug and release, the soak under ASan, valgrind, TSan)"
	;;
bench)
	install_deps
	configure_in build-release
	make -C build-release -j"$jobs" bench
	;;
*)
	echo "usage: $0 demo|check|bench" >&2
	exit 2
	;;
esac
