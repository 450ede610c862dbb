/* SPDX-License-Identifier: MIT */
#ifndef RSC_PROBES_H
#define RSC_PROBES_H

/*
 * USDT probes, provider "ringscope" (man 7 ringscope, PROBES). With
 * <sys/sdt.h> (Debian: systemtap-sdt-dev) each probe is one NOP plus a note
 * in .note.stapsdt that bpftrace, perf and SystemTap attach to at run time;
 * without it they compile to nothing.
 */
#if defined(RSC_USDT) && RSC_USDT
#include <sys/sdt.h>
#define RSC__PROBE3(name, a, b, c) STAP_PROBE3(ringscope, name, a, b, c)
#define RSC__PROBE4(name, a, b, c, d) STAP_PROBE4(ringscope, name, a, b, c, d)
#define RSC__PROBE5(name, a, b, c, d, e) STAP_PROBE5(ringscope, name, a, b, c, d, e)
#else
#define RSC__PROBE3(name, a, b, c) ((void)0)
#define RSC__PROBE4(name, a, b, c, d) ((void)0)
#define RSC__PROBE5(name, a, b, c, d, e) ((void)0)
#endif

#endif /* RSC_PROBES_H */
