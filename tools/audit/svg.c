/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "audit.h"

#define W      900
#define H      420
#define LEFT   60
#define RIGHT  200 /* room for the legend */
#define TOP    40
#define BOTTOM 50

static const char *const palette[] = {
	"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
	"#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a",
};

/* A round step giving about @want ticks over [0, max]. */
static double nice_step(double max, int want)
{
	double raw = max / want, mag = pow(10, floor(log10(raw))), f = raw / mag;

	return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

static void xml_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else if (*s == '&')
			fputs("&amp;", f);
		else
			fputc(*s, f);
	}
}

static void series(FILE *f, int n, const double *t, const int *c, int stride,
		   double xs, double ys, const char *color, double width)
{
	fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" points=\"", color,
		width);
	for (int i = 0; i < n; i++)
		fprintf(f, "%s%.1f,%.1f", i ? " " : "", LEFT + t[i] * xs,
			H - BOTTOM - c[i * stride] * ys);
	fputs("\"/>\n", f);
}

int svg_write(FILE *f, pid_t pid, int n, const double *t, int n_kinds,
	      const char *const *kinds, const int *counts, const int *total,
	      const char *title, const bool *growing, int stride)
{
	double tmax = n > 0 && t[n - 1] > 0 ? t[n - 1] : 1, xs, ys, step;
	int ymax = 1, ly = TOP + 10;

	(void)pid;
	for (int i = 0; i < n; i++)
		if (total[i] > ymax)
			ymax = total[i];
	step = nice_step(ymax, 5);
	ymax = (int)(ceil(ymax / step) * step);
	xs = (W - LEFT - RIGHT) / tmax;
	ys = (double)(H - TOP - BOTTOM) / ymax;

	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		   "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
		   "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
		W, H, W, H);
	fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\">", LEFT);
	xml_text(f, title);
	fputs("</text>\n", f);
	/* Grid and axes. */
	for (double y = 0; y <= ymax + 1e-9; y += step) {
		double py = H - BOTTOM - y * ys;

		fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n"
			   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
			LEFT, py, W - RIGHT, py, LEFT - 6, py + 4, y);
	}
	step = nice_step(tmax, 8);
	for (double x = 0; x <= tmax + 1e-9; x += step) {
		double px = LEFT + x * xs;

		fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e0e0e0\"/>\n"
			   "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
			px, TOP, px, H - BOTTOM, px, H - BOTTOM + 16, x);
	}
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n"
		   "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n",
		LEFT, H - BOTTOM, W - RIGHT, H - BOTTOM, LEFT, TOP, LEFT, H - BOTTOM);
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">seconds</text>\n",
		(LEFT + W - RIGHT) / 2, H - 12);
	fprintf(f, "<text x=\"16\" y=\"%d\" transform=\"rotate(-90 16 %d)\" "
		   "text-anchor=\"middle\">descriptors</text>\n",
		(TOP + H - BOTTOM) / 2, (TOP + H - BOTTOM) / 2);
	/* One line per kind, the total on top; a legend that names what grew. */
	for (int k = 0; k < n_kinds; k++) {
		const char *color = palette[k % (int)(sizeof(palette) / sizeof(palette[0]))];

		series(f, n, t, counts + k, stride, xs, ys, color, 1.5);
		fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"4\" fill=\"%s\"/>"
			   "<text x=\"%d\" y=\"%d\"%s>",
			W - RIGHT + 16, ly - 4, color, W - RIGHT + 36, ly,
			growing[k] ? " fill=\"#d62728\" font-weight=\"bold\"" : "");
		xml_text(f, kinds[k]);
		fprintf(f, " (%d)%s</text>\n", counts[(n - 1) * stride + k],
			growing[k] ? " growing" : "");
		ly += 18;
	}
	series(f, n, t, total, 1, xs, ys, "black", 2.5);
	fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"4\" fill=\"black\"/>"
		   "<text x=\"%d\" y=\"%d\" font-weight=\"bold\"%s>total (%d)%s</text>\n",
		W - RIGHT + 16, ly - 4, W - RIGHT + 36, ly,
		growing[stride] ? " fill=\"#d62728\"" : "", total[n - 1],
		growing[stride] ? " growing" : "");
	fputs("</svg>\n", f);
	if (fclose(f) != 0)
		return errno ? -errno : -EIO;
	return 0;
}
