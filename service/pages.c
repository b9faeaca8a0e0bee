// SPDX-License-Identifier: GPL-2.0
/*
 * The dashboard, the series pages and their plots.  Pages are plain HTML
 * that works without JavaScript; plots are SVG that gnuplot renders from
 * the templates in plots/, kept in cache_dir until their series changes.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "regressd.h"

extern char **environ;

void buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *np;

		while (cap < b->len + n + 1)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = 0;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	char small[512], *big = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		buf_add(b, small, n);
		return;
	}
	big = malloc(n + 1);
	if (!big) {
		b->oom = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, n + 1, fmt, ap);
	va_end(ap);
	buf_add(b, big, n);
	free(big);
}

void buf_html(struct buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': buf_add(b, "&lt;", 4); break;
		case '>': buf_add(b, "&gt;", 4); break;
		case '&': buf_add(b, "&amp;", 5); break;
		case '"': buf_add(b, "&quot;", 6); break;
		case '\'': buf_add(b, "&#39;", 5); break;
		default: buf_add(b, s, 1);
		}
	}
}

void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/*
 * A double-quoted gnuplot string literal of at most @max bytes of @s:
 * backslash and quote escaped, control characters dropped.  (gnuplot 5.4
 * does not take '' for a quote inside single quotes.)
 */
static void buf_gp(struct buf *b, const char *s, size_t max)
{
	buf_add(b, "\"", 1);
	/* Past @max only to end a UTF-8 character: the SVG must stay UTF-8. */
	for (size_t i = 0; s[i] && (i < max || ((unsigned char)s[i] & 0xc0) == 0x80); i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_add(b, "\\", 1);
		if ((unsigned char)s[i] >= ' ')
			buf_add(b, s + i, 1);
	}
	buf_add(b, "\"", 1);
}

static const char head[] =
	"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	"<style>\n"
	"body{font-family:DejaVu Sans,sans-serif;margin:1.5em;color:#222;max-width:1100px}\n"
	"table{border-collapse:collapse;margin:.5em 0 1.5em}\n"
	"td,th{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;"
	"font-size:.9em}\n"
	"th{background:#f4f4f4}.num{text-align:right;font-variant-numeric:tabular-nums}\n"
	".regression{color:#b00020}.improvement{color:#1b7f35}\n"
	"figure{margin:0 0 1.5em}figcaption{font-size:.9em;margin:.2em 0}\n"
	"img.plot,svg{max-width:100%;height:auto}code{font-size:.85em}\n"
	"</style>\n";

static void page_start(struct buf *b, const char *title)
{
	buf_add(b, head, sizeof(head) - 1);
	buf_add(b, "<title>", 7);
	buf_html(b, title);
	buf_printf(b, "</title></head><body>\n<p><a href=\"/\">kmmu performance</a></p>\n<h1>");
	buf_html(b, title);
	buf_printf(b, "</h1>\n");
}

static void commit_link(struct buf *b, const char *sha)
{
	char url[1024];

	if (*conf->commit_url && strcmp(sha, "unknown")) {
		snprintf(url, sizeof(url), conf->commit_url, sha);
		buf_printf(b, "<a href=\"");
		buf_html(b, url);
		buf_printf(b, "\"><code>%.12s</code></a>", sha);
	} else {
		buf_printf(b, "<code>%.12s</code>", sha);
	}
}

/* A series' params as "key=value key=value", for people. */
#define PARAMS_TEXT(col) " (SELECT coalesce(string_agg(key || '=' || value, ' ' ORDER BY key), '')" \
	" FROM jsonb_each_text(" col "))"

#define CP_COLUMNS "p.id, p.series_id, s.bench || '.' || s.metric," PARAMS_TEXT("s.params") \
	", m.label || ' ' || p.branch || ' (' || p.host_class || ')', c.sha, p.old_median," \
	" p.new_median, p.rel_change, p.pvalue, s.unit, p.kind, p.state, s.backend, p.effect," \
	" p.weakened IS NOT NULL"
#define CP_FROM " FROM change_points p JOIN series s ON s.id = p.series_id" \
	" JOIN machine_labels m ON m.id = p.machine_id JOIN commits c ON c.id = p.commit_id"

/* What a person with a token can say of change point @id: a plain form. */
static void state_form(struct buf *b, const char *id, const char *state)
{
	static const char *const states[] = { "new", "acknowledged", "invalid", "fixed" };

	buf_printf(b, "<td><form method=\"post\" action=\"/change-points/%s/state\">"
		   "<select name=\"state\" aria-label=\"state\">", id);
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		buf_printf(b, "<option%s>%s</option>", strcmp(states[i], state) ? "" :
			   " selected", states[i]);
	buf_printf(b, "</select> <input name=\"note\" size=\"14\" maxlength=\"1000\" "
		   "placeholder=\"note\" aria-label=\"note\"> <input name=\"token\" "
		   "type=\"password\" size=\"10\" required placeholder=\"token\" "
		   "aria-label=\"token\"> <button>set</button></form></td>");
}

static void cp_header(struct buf *b, bool forms)
{
	buf_printf(b, "<table><tr><th>series</th><th>machine, branch</th><th>first commit</th>"
		   "<th class=\"num\">change</th><th class=\"num\">before</th>"
		   "<th class=\"num\">after</th><th class=\"num\" title=\"the step in noises "
		   "of the line (robust sigma of its per-commit medians), and Welch's p\">"
		   "effect</th><th>state</th>"
		   "<th>id</th>%s</tr>\n", forms ? "<th>set the state</th>" : "");
}

/* Rows lo..hi of @res (CP_COLUMNS first); with @forms, a state form each. */
static void cp_rows(struct buf *b, PGresult *res, int lo, int hi, bool forms)
{
	for (int i = lo; i < hi; i++) {
		const char *kind = PQgetvalue(res, i, 11);

		buf_printf(b, "<tr class=\"%s\"><td><a href=\"/series/%s\">", kind,
			   PQgetvalue(res, i, 1));
		buf_html(b, PQgetvalue(res, i, 2));
		buf_printf(b, "</a> <small>");
		buf_html(b, PQgetvalue(res, i, 13));
		buf_printf(b, " ");
		buf_html(b, PQgetvalue(res, i, 3));
		buf_printf(b, "</small></td><td>");
		buf_html(b, PQgetvalue(res, i, 4));
		buf_printf(b, "</td><td>");
		commit_link(b, PQgetvalue(res, i, 5));
		buf_printf(b, "</td><td class=\"num\">%+.1f%% %s</td>"
			   "<td class=\"num\">%.4g</td><td class=\"num\">%.4g ",
			   100 * atof(PQgetvalue(res, i, 8)), kind, atof(PQgetvalue(res, i, 6)),
			   atof(PQgetvalue(res, i, 7)));
		buf_html(b, PQgetvalue(res, i, 10));
		/* The effect in noises; past 1e-6 a p-value says nothing more. */
		buf_printf(b, "</td><td class=\"num\">");
		if (!PQgetisnull(res, i, 14))
			buf_printf(b, "%.1f&sigma; ", atof(PQgetvalue(res, i, 14)));
		buf_printf(b, "<small>p %s%.2g</small></td><td>%s%s</td><td>%s</td>",
			   atof(PQgetvalue(res, i, 9)) < 1e-6 ? "&lt; " : "",
			   fmax(atof(PQgetvalue(res, i, 9)), 1e-6), PQgetvalue(res, i, 12),
			   *PQgetvalue(res, i, 15) == 't' ? " <small>(weakened)</small>" : "",
			   PQgetvalue(res, i, 0));
		if (forms)
			state_form(b, PQgetvalue(res, i, 0), PQgetvalue(res, i, 12));
		buf_printf(b, "</tr>\n");
	}
}

/* Change points; with @forms, each with a form to set its state. */
static void cp_table(struct buf *b, PGresult *res, bool forms)
{
	cp_header(b, forms);
	cp_rows(b, res, 0, PQntuples(res), forms);
	buf_printf(b, "</table>\n");
}

/*
 * Alerts: CP_COLUMNS, then ALERT_COLUMNS (at A_ID...), a row per change
 * point, grouped by alert, each alert's largest first.
 */
#define ALERT_COLUMNS ", a.id, a.state, a.bug_url, a.note, fp.sha, c.sha, c.gen"
#define A_ID 16
#define ALERT_FROM CP_FROM " JOIN alerts a ON a.id = p.alert_id" \
	" LEFT JOIN LATERAL (SELECT pc.sha FROM change_points q JOIN commits pc" \
	" ON pc.id = q.prev_commit_id WHERE q.alert_id = a.id" \
	" ORDER BY pc.gen, pc.committed, pc.id LIMIT 1) fp ON true"
#define ALERT_ORDER " ORDER BY c.gen DESC, c.committed DESC, a.id DESC," \
	" abs(p.rel_change) DESC, p.id"

/* The commits first_parent..commit an alert's step lies in, linked. */
static void range_link(struct buf *b, const char *from, const char *to)
{
	char url[2048];

	if (!*from)
		return;
	buf_printf(b, " in ");
	if (*conf->range_url) {
		snprintf(url, sizeof(url), conf->range_url, from, to);
		buf_printf(b, "<a href=\"");
		buf_html(b, url);
		buf_printf(b, "\"><code>%.12s..%.12s</code></a>", from, to);
	} else {
		buf_printf(b, "<code>%.12s..%.12s</code>", from, to);
	}
}

static void alert_head(struct buf *b, PGresult *res, int i, int n, int regs, bool link)
{
	const char *bug = PQgetvalue(res, i, A_ID + 2);

	buf_printf(b, "<h3 class=\"alert\">");
	if (link)
		buf_printf(b, "<a href=\"/alerts/%s\">", PQgetvalue(res, i, A_ID));
	buf_printf(b, "Alert %s", PQgetvalue(res, i, A_ID));
	if (link)
		buf_printf(b, "</a>");
	buf_printf(b, ": ");
	commit_link(b, PQgetvalue(res, i, A_ID + 5));
	range_link(b, PQgetvalue(res, i, A_ID + 4), PQgetvalue(res, i, A_ID + 5));
	buf_printf(b, " &mdash; %d regression%s, %d improvement%s, largest %+.1f%% "
		   "&mdash; %s", regs, regs == 1 ? "" : "s", n - regs, n - regs == 1 ? "" : "s",
		   100 * atof(PQgetvalue(res, i, 8)), PQgetvalue(res, i, A_ID + 1));
	if (*bug) {
		buf_printf(b, " &mdash; <a href=\"");
		buf_html(b, bug);
		buf_printf(b, "\">bug</a>");
	}
	buf_printf(b, "</h3>\n");
	if (*PQgetvalue(res, i, A_ID + 3)) {
		buf_printf(b, "<p class=\"note\">");
		buf_html(b, PQgetvalue(res, i, A_ID + 3));
		buf_printf(b, "</p>\n");
	}
}

/* Every alert of @res, each a heading and a table of its change points. */
static void alert_tables(struct buf *b, PGresult *res, bool link)
{
	int n = PQntuples(res);

	for (int i = 0, j; i < n; i = j) {
		int regs = 0;

		for (j = i; j < n && !strcmp(PQgetvalue(res, j, A_ID), PQgetvalue(res, i, A_ID));
		     j++)
			regs += !strcmp(PQgetvalue(res, j, 11), "regression");
		alert_head(b, res, i, j - i, regs, link);
		cp_header(b, false);
		cp_rows(b, res, i, j, false);
		buf_printf(b, "</table>\n");
	}
}

#define SPARK_POINTS "30"

/* The medians m[0..n) as a small inline SVG line, the last one marked. */
static void sparkline(struct buf *b, const double *m, size_t n)
{
	const double w = 120, h = 22, pad = 2;
	double lo = m[0], hi = m[0];

	for (size_t i = 1; i < n; i++) {
		lo = fmin(lo, m[i]);
		hi = fmax(hi, m[i]);
	}
	buf_printf(b, "<svg class=\"spark\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f "
		   "%.0f\" role=\"img\" aria-label=\"last %zu points\"><polyline fill=\"none\" "
		   "stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"", w, h, w, h, n);
	for (size_t i = 0; i < n; i++) {
		double x = n > 1 ? pad + (w - 2 * pad) * i / (n - 1) : w / 2;
		double y = hi > lo ? h - pad - (h - 2 * pad) * (m[i] - lo) / (hi - lo) : h / 2;

		buf_printf(b, "%s%.1f,%.1f", i ? " " : "", x, y);
		if (i == n - 1)
			buf_printf(b, "\"/><circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" "
				   "fill=\"#1f77b4\"/></svg>", x, y);
	}
}

int page_dashboard(PGconn *c, struct buf *b)
{
	PGresult *res;
	const char *bench = NULL;
	int ret;

	page_start(b, "kmmu performance");
	/* Alerts someone must look at: those holding a regression. */
	ret = db_exec(c, &res, "SELECT " CP_COLUMNS ALERT_COLUMNS ALERT_FROM
		      " WHERE a.state IN ('new', 'acknowledged') AND EXISTS (SELECT 1"
		      " FROM change_points r WHERE r.alert_id = a.id AND r.kind = 'regression')"
		      ALERT_ORDER, 0, NULL);
	if (ret)
		return ret;
	buf_printf(b, "<h2>Open alerts</h2>\n");
	if (PQntuples(res))
		alert_tables(b, res, true);
	else
		buf_printf(b, "<p>None.</p>\n");
	PQclear(res);

	ret = db_exec(c, &res, "SELECT " CP_COLUMNS ALERT_COLUMNS ALERT_FROM
		      " WHERE a.id IN (SELECT a2.id FROM alerts a2 JOIN commits c2"
		      " ON c2.id = a2.commit_id WHERE a2.state = 'new' AND NOT EXISTS (SELECT 1"
		      " FROM change_points r WHERE r.alert_id = a2.id AND r.kind = 'regression')"
		      " AND EXISTS (SELECT 1 FROM change_points r WHERE r.alert_id = a2.id)"
		      " ORDER BY c2.gen DESC, a2.id DESC LIMIT 10)" ALERT_ORDER, 0, NULL);
	if (ret)
		return ret;
	if (PQntuples(res)) {
		buf_printf(b, "<h2>New improvements</h2>\n");
		alert_tables(b, res, true);
	}
	PQclear(res);

	/* Per series and line: its points' count and the last SPARK medians. */
	ret = db_exec(c, &res, "SELECT s.id, s.bench, s.metric, s.backend,"
		      PARAMS_TEXT("s.params") ", s.unit, s.lower_is_better, t.line,"
		      " t.total, t.meds FROM series s JOIN LATERAL (SELECT host_class, line,"
		      " max(total) AS total, array_agg(med ORDER BY rn DESC) AS meds FROM"
		      " (SELECT host_class, line, (SELECT percentile_cont(0.5) WITHIN GROUP"
		      " (ORDER BY v) FROM unnest(samples) v) AS med, row_number() OVER w AS rn,"
		      " count(*) OVER (PARTITION BY line) AS total FROM commit_samples"
		      " WHERE series_id = s.id WINDOW w AS (PARTITION BY line"
		      " ORDER BY gen DESC, committed DESC, commit_id DESC)) x"
		      " WHERE rn <= " SPARK_POINTS " GROUP BY host_class, line) t ON true"
		      " WHERE NOT s.params ? 'mmu'"
		      " ORDER BY s.bench, s.metric, s.backend, s.params_key, t.host_class, t.line",
		      0, NULL);
	if (ret)
		return ret;
	buf_printf(b, "<h2>Benchmarks</h2>\n");
	if (!PQntuples(res))
		buf_printf(b, "<p>No results yet: <code>make bench</code> with "
			   "<code>KMMU_SERVICE_URL</code> and <code>KMMU_SERVICE_TOKEN</code> set "
			   "sends them here.</p>\n");
	for (int i = 0; i < PQntuples(res); i++) {
		const char *id = PQgetvalue(res, i, 0);
		double *m = NULL, change;
		size_t n = 0;
		bool worse;

		if (!bench || strcmp(bench, PQgetvalue(res, i, 1))) {
			buf_printf(b, "%s<h3>", bench ? "</table>\n" : "");
			bench = PQgetvalue(res, i, 1);
			buf_html(b, bench);
			buf_printf(b, "</h3>\n<table><tr><th>series</th><th>machine, branch</th>"
				   "<th class=\"num\">commits</th><th class=\"num\">latest</th>"
				   "<th class=\"num\">vs previous</th><th>last %s</th></tr>\n",
				   SPARK_POINTS);
		}
		if (parse_float_array(PQgetvalue(res, i, 9), &m, &n) || !n) {
			free(m);
			continue;
		}
		change = n > 1 && m[n - 2] ? (m[n - 1] - m[n - 2]) / fabs(m[n - 2]) : NAN;
		worse = *PQgetvalue(res, i, 6) == 't' ? change > 0 : change < 0;
		buf_printf(b, "<tr><td><a href=\"/series/%s\">", id);
		buf_html(b, PQgetvalue(res, i, 2));
		buf_printf(b, "</a> <small>");
		buf_html(b, PQgetvalue(res, i, 3));
		buf_printf(b, " ");
		buf_html(b, PQgetvalue(res, i, 4));
		buf_printf(b, "</small></td><td>");
		buf_html(b, PQgetvalue(res, i, 7));
		buf_printf(b, "</td><td class=\"num\">%s</td><td class=\"num\">%.4g ",
			   PQgetvalue(res, i, 8), m[n - 1]);
		buf_html(b, PQgetvalue(res, i, 5));
		if (isfinite(change))
			buf_printf(b, "</td><td class=\"num%s\">%+.1f%%</td><td>",
				   fabs(change) < conf->detect.min_magnitude ? "" :
				   worse ? " regression" : " improvement", 100 * change);
		else
			buf_printf(b, "</td><td></td><td>");
		sparkline(b, m, n);
		buf_printf(b, "</td></tr>\n");
		free(m);
	}
	if (bench)
		buf_printf(b, "</table>\n");
	PQclear(res);
	buf_printf(b, "<p><small>API: <code>/api/v1/hosts</code>, <code>/api/v1/benchmarks"
		   "</code>, <code>/api/v1/series</code>, <code>/api/v1/change-points</code>, "
		   "<code>/api/v1/annotations</code></small></p>\n</body></html>\n");
	return 0;
}

/* The inline SVG of a rendered plot: without its XML prologue. */
static void inline_svg(struct buf *b, const struct buf *svg)
{
	const char *p = strstr(svg->p, "<svg");

	if (p)
		buf_add(b, p, svg->len - (p - svg->p));
}

static long long kvm_counterpart(PGconn *c, const char *id)
{
	PGresult *res;
	long long kvm = 0;

	if (db_exec(c, &res, "SELECT k.id FROM series s JOIN series k ON k.bench = s.bench"
		    " AND k.metric = s.metric AND k.backend = s.backend"
		    " AND k.params = s.params || '{\"mmu\": \"kvm\"}'::jsonb"
		    " WHERE s.id = $1 AND NOT s.params ? 'mmu'", 1, &id))
		return -1;
	if (PQntuples(res))
		kvm = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	return kvm;
}

static int resolve_sha(PGconn *c, const char *prefix, char *sha, char *why, size_t whylen);

/*
 * The commits of series @id to draw: from and to (sha prefixes, either may be
 * missing) or the last @last of them; 0 bounds for the whole history.
 */
int series_range(PGconn *c, long long id, const char *from, const char *to, const char *last,
		 struct plot_range *r, char *why, size_t whylen)
{
	const char *shas[2] = { from, to };
	long long *ends[2] = { &r->from, &r->to };
	char id_s[24], sha[41];
	PGresult *res;
	int ret;

	memset(r, 0, sizeof(*r));
	snprintf(id_s, sizeof(id_s), "%lld", id);
	if (last && (from || to)) {
		snprintf(why, whylen, "takes from and to, or last, not both");
		return -EINVAL;
	}
	if (last) {
		const char *p[2] = { id_s, last };
		char *end;
		long n = strtol(last, &end, 10);

		if (*end || end == last || n < 1 || n > 1000000) {
			snprintf(why, whylen, "last = '%.20s': not a number of commits (1 or more)",
				 last);
			return -EINVAL;
		}
		ret = db_exec(c, &res, "SELECT min(gen) FROM (SELECT DISTINCT gen, committed,"
			      " commit_id FROM commit_samples WHERE series_id = $1"
			      " ORDER BY gen DESC, committed DESC, commit_id DESC LIMIT $2) t", 2, p);
		if (ret)
			return ret;
		r->from = PQgetisnull(res, 0, 0) ? 0 : atoll(PQgetvalue(res, 0, 0));
		PQclear(res);
		return 0;
	}
	for (int i = 0; i < 2; i++) {
		const char *p[1] = { sha };

		if (!shas[i])
			continue;
		ret = resolve_sha(c, shas[i], sha, why, whylen);
		if (ret)
			return ret;
		ret = db_exec(c, &res, "SELECT gen FROM commits WHERE sha = $1", 1, p);
		if (ret)
			return ret;
		*ends[i] = atoll(PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	if (r->from && r->to && r->from > r->to) {
		snprintf(why, whylen, "from comes after to");
		return -EINVAL;
	}
	return 0;
}

/* The GET form that picks the range: the series' commits, newest first. */
static int range_form(PGconn *c, struct buf *b, const char *id, const struct plot_range *r)
{
	PGresult *res;
	int ret;

	ret = db_exec(c, &res, "SELECT c.sha, c.gen FROM commits c WHERE c.id IN (SELECT commit_id"
		      " FROM commit_samples WHERE series_id = $1) ORDER BY c.gen DESC,"
		      " c.committed DESC, c.id DESC", 1, &id);
	if (ret)
		return ret;
	buf_printf(b, "<form method=\"get\" action=\"/series/%s\"><label>from <select "
		   "name=\"from\"><option value=\"\">first</option>", id);
	for (int i = 0; i < PQntuples(res); i++)
		buf_printf(b, "<option%s>%.12s</option>",
			   r->from == atoll(PQgetvalue(res, i, 1)) ? " selected" : "",
			   PQgetvalue(res, i, 0));
	buf_printf(b, "</select></label> <label>to <select name=\"to\"><option value=\"\">"
		   "latest</option>");
	for (int i = 0; i < PQntuples(res); i++)
		buf_printf(b, "<option%s>%.12s</option>",
			   r->to == atoll(PQgetvalue(res, i, 1)) ? " selected" : "",
			   PQgetvalue(res, i, 0));
	buf_printf(b, "</select></label> <button>zoom</button> <a href=\"/series/%s?last=30\">"
		   "last 30</a> <a href=\"/series/%s\">all %d</a></form>\n", id, id,
		   PQntuples(res));
	PQclear(res);
	return 0;
}

#define ALERT_PLOTS	6	/* series drawn on an alert's page, largest first */
#define ALERT_AROUND	30	/* commits drawn each side of the alert's */

/*
 * An alert's page: its change points, largest first, a form for its state,
 * bug link and note, and the plots of its series around its commit.
 */
int page_alert(PGconn *c, long long id, struct buf *b)
{
	static const char *const states[] = { "new", "acknowledged", "invalid", "fixed" };
	long long drawn[ALERT_PLOTS];
	unsigned int ndrawn = 0;
	struct plot_range range;
	char id_s[24], title[64];
	struct buf svg = { 0 };
	const char *p[1] = { id_s };
	PGresult *res;
	int ret, n;

	snprintf(id_s, sizeof(id_s), "%lld", id);
	ret = db_exec(c, &res, "SELECT " CP_COLUMNS ALERT_COLUMNS ALERT_FROM " WHERE a.id = $1"
		      ALERT_ORDER, 1, p);
	if (ret)
		return ret;
	n = PQntuples(res);
	if (!n) {
		PQclear(res);
		return -ENOENT;
	}
	snprintf(title, sizeof(title), "Alert %s", id_s);
	page_start(b, title);
	buf_printf(b, "<p>Every series whose level changed at this commit, on any machine "
		   "and branch, largest first. Effect: the step in noises of its line; "
		   "<a href=\"/api/v1/alerts/%s\">JSON</a>.</p>\n", id_s);
	alert_tables(b, res, false);

	buf_printf(b, "<form method=\"post\" action=\"/alerts/%s/state\"><select name=\"state\" "
		   "aria-label=\"state\">", id_s);
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		buf_printf(b, "<option%s>%s</option>",
			   strcmp(states[i], PQgetvalue(res, 0, A_ID + 1)) ? "" : " selected",
			   states[i]);
	buf_printf(b, "</select> <input name=\"bug_url\" size=\"30\" maxlength=\"1000\" "
		   "placeholder=\"bug link (https://...)\" aria-label=\"bug link\"> "
		   "<input name=\"note\" size=\"24\" maxlength=\"1000\" placeholder=\"note\" "
		   "aria-label=\"note\"> <input name=\"token\" type=\"password\" size=\"10\" "
		   "required placeholder=\"token\" aria-label=\"token\"> <button>set</button> "
		   "<small>(an empty link or note leaves it as it is)</small></form>\n");

	range.from = atoll(PQgetvalue(res, 0, A_ID + 6)) - ALERT_AROUND;
	range.to = atoll(PQgetvalue(res, 0, A_ID + 6)) + ALERT_AROUND;
	if (range.from < 1)
		range.from = 1;
	for (int i = 0; i < n && ndrawn < ALERT_PLOTS && !ret; i++) {
		long long sid = atoll(PQgetvalue(res, i, 1));
		unsigned int k;

		for (k = 0; k < ndrawn && drawn[k] != sid; k++)
			;
		if (k < ndrawn)
			continue;
		drawn[ndrawn++] = sid;
		svg.len = 0;
		ret = plot_series(c, sid, false, &range, &svg);
		if (ret == -ERANGE || ret == -ENOENT) {
			ret = 0;
			continue;
		}
		if (ret)
			break;
		buf_printf(b, "<figure>");
		inline_svg(b, &svg);
		buf_printf(b, "<figcaption><a href=\"/series/%lld\">", sid);
		buf_html(b, PQgetvalue(res, i, 2));
		buf_printf(b, "</a> <small>");
		buf_html(b, PQgetvalue(res, i, 3));
		buf_printf(b, "</small></figcaption></figure>\n");
	}
	buf_printf(b, "</body></html>\n");
	PQclear(res);
	buf_free(&svg);
	return ret;
}

int page_series(PGconn *c, long long id, const struct plot_range *range, struct buf *b)
{
	char id_s[24], title[512];
	const char *p[1] = { id_s };
	struct buf svg = { 0 };
	PGresult *res;
	long long kvm;
	int ret;

	snprintf(id_s, sizeof(id_s), "%lld", id);
	ret = db_exec(c, &res, "SELECT bench, metric, backend, unit, lower_is_better,"
		      PARAMS_TEXT("params") " FROM series WHERE id = $1", 1, p);
	if (ret)
		return ret;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return -ENOENT;
	}
	snprintf(title, sizeof(title), "%s.%s", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
	page_start(b, title);
	buf_printf(b, "<p>");
	buf_html(b, PQgetvalue(res, 0, 3));
	buf_printf(b, ", %s is better; backend ", *PQgetvalue(res, 0, 4) == 't' ? "lower" :
		   "higher");
	buf_html(b, PQgetvalue(res, 0, 2));
	buf_printf(b, "; <code>");
	buf_html(b, PQgetvalue(res, 0, 5));
	buf_printf(b, "</code>. <a href=\"/api/v1/series/%s\">data</a></p>\n", id_s);
	PQclear(res);

	ret = range_form(c, b, id_s, range);
	if (!ret)
		ret = plot_series(c, id, false, range, &svg);
	if (ret)
		goto out;
	buf_printf(b, "<figure>");
	inline_svg(b, &svg);
	buf_printf(b, "</figure>\n");
	kvm = kvm_counterpart(c, id_s);
	if (kvm > 0) {
		svg.len = 0;
		ret = plot_series(c, id, true, range, &svg);
		if (ret)
			goto out;
		buf_printf(b, "<h2>kmmu and KVM</h2>\n<figure>");
		inline_svg(b, &svg);
		buf_printf(b, "</figure>\n");
	}

	ret = db_exec(c, &res, "SELECT " CP_COLUMNS CP_FROM
		      " WHERE p.series_id = $1 ORDER BY c.gen, c.committed, p.id", 1, p);
	if (ret)
		goto out;
	buf_printf(b, "<h2>Change points (%d)</h2>\n", PQntuples(res));
	if (PQntuples(res))
		cp_table(b, res, true);
	PQclear(res);

	ret = db_exec(c, &res, "SELECT c.sha, coalesce(a.host_class, 'all'), a.text"
		      " FROM annotations a JOIN commits c ON c.id = a.commit_id"
		      " WHERE (a.bench IS NULL OR a.bench = (SELECT bench FROM series"
		      " WHERE id = $1)) ORDER BY c.gen, c.committed, a.id", 1, p);
	if (ret)
		goto out;
	if (PQntuples(res)) {
		buf_printf(b, "<h2>Annotations</h2>\n<ul>\n");
		for (int i = 0; i < PQntuples(res); i++) {
			buf_printf(b, "<li>");
			commit_link(b, PQgetvalue(res, i, 0));
			buf_printf(b, " (");
			buf_html(b, PQgetvalue(res, i, 1));
			buf_printf(b, "): ");
			buf_html(b, PQgetvalue(res, i, 2));
			buf_printf(b, "</li>\n");
		}
		buf_printf(b, "</ul>\n");
	}
	PQclear(res);
	buf_printf(b, "</body></html>\n");
out:
	buf_free(&svg);
	return ret;
}

/* ---- plots ---- */

struct line {
	char		title[96];
	FILE		*medians, *samples;
	unsigned int	points;
};

#define MAX_LINES 16

struct plot {
	char		dir[4096];
	struct line	lines[MAX_LINES];
	unsigned int	nlines;
	unsigned int	nfloors;	/* N.floor files: a floor per host class */
	long long	*commits;	/* x -> commit id */
	char		(*shas)[13];
	size_t		ncommits;
};

static int commit_x(struct plot *pl, long long commit)
{
	for (size_t i = 0; i < pl->ncommits; i++)
		if (pl->commits[i] == commit)
			return i;
	return -1;
}

/*
 * A title as gnuplot's data header and its SVG take it whatever a host
 * called itself: letters, digits and " .:_#@/+-" kept, the rest '_'.
 */
static void plot_title(char *dst, size_t n, const char *src)
{
	size_t i;

	for (i = 0; src[i] && i + 1 < n; i++)
		dst[i] = isalnum((unsigned char)src[i]) || strchr(" .:_#@/+-", src[i]) ?
			 src[i] : '_';
	dst[i] = 0;
}

static struct line *line_of(struct plot *pl, const char *name)
{
	char path[4200], title[96];
	struct line *l;

	plot_title(title, sizeof(title), name);

	for (unsigned int i = 0; i < pl->nlines; i++)
		if (!strcmp(pl->lines[i].title, title))
			return &pl->lines[i];
	if (pl->nlines == MAX_LINES)
		return NULL;
	l = &pl->lines[pl->nlines];
	snprintf(l->title, sizeof(l->title), "%s", title);
	snprintf(path, sizeof(path), "%s/%u.median", pl->dir, pl->nlines + 1);
	l->medians = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/%u.samples", pl->dir, pl->nlines + 1);
	l->samples = fopen(path, "w");
	if (!l->medians || !l->samples) {
		if (l->medians)
			fclose(l->medians);
		if (l->samples)
			fclose(l->samples);
		return NULL;
	}
	/* gnuplot takes the line's title from this header. */
	fprintf(l->medians, "x \"%s\"\n", title);
	pl->nlines++;
	return l;
}

/*
 * Points of one series, a line per machine and branch (grouped by host
 * class), on the x of their commits.
 */
static int add_series(PGconn *c, struct plot *pl, const char *id, const char *prefix)
{
	PGresult *res;
	int ret;

	ret = db_exec(c, &res, "SELECT line, commit_id, samples FROM commit_samples"
		      " WHERE series_id = $1 ORDER BY host_class, line, gen, committed, commit_id",
		      1, &id);
	if (ret)
		return ret;
	for (int i = 0; i < PQntuples(res); i++) {
		char title[320];
		struct line *l;
		double *v;
		size_t n;
		int x = commit_x(pl, atoll(PQgetvalue(res, i, 1)));

		if (x < 0)	/* outside the range drawn */
			continue;
		snprintf(title, sizeof(title), "%s%s", prefix, PQgetvalue(res, i, 0));
		l = line_of(pl, title);
		if (!l && pl->nlines == MAX_LINES)
			continue;	/* the first MAX_LINES lines are drawn */
		if (!l || parse_float_array(PQgetvalue(res, i, 2), &v, &n) || !n) {
			ret = -EIO;
			break;
		}
		for (size_t k = 0; k < n; k++)
			fprintf(l->samples, "%d %.17g\n", x, v[k]);
		fprintf(l->medians, "%d %.17g\n", x, median_of(v, n));
		l->points++;
		free(v);
	}
	PQclear(res);
	return ret;
}

/*
 * The floor each machine's figures were measured against, per commit:
 * the median of its runs' floor medians, drawn on its own axis (ns/entry)
 * so that a step in the figure can be told from a step in the machine.
 */
static int add_floors(PGconn *c, struct plot *pl, const char *id)
{
	char path[4200], last[320] = "", ftitle[96];
	FILE *f = NULL;
	PGresult *res;
	int ret;

	ret = db_exec(c, &res, "SELECT m.label || ' ' || r.floor_metric, u.commit_id,"
		      " percentile_cont(0.5) WITHIN GROUP (ORDER BY r.floor_median)"
		      " FROM results r JOIN runs u ON u.id = r.run_id"
		      " JOIN hosts h ON h.id = u.host_id JOIN machine_labels m ON m.id = h.machine"
		      " JOIN commits c ON c.id = u.commit_id"
		      " WHERE r.series_id = $1 AND r.floor_median IS NOT NULL"
		      " AND u.retracted IS NULL AND NOT u.dirty"
		      " GROUP BY 1, u.commit_id, c.gen, c.committed ORDER BY 1, c.gen, c.committed,"
		      " u.commit_id", 1, &id);
	if (ret)
		return ret;
	for (int i = 0; i < PQntuples(res) && !ret; i++) {
		int x = commit_x(pl, atoll(PQgetvalue(res, i, 1)));

		if (strcmp(last, PQgetvalue(res, i, 0))) {
			if (f && fclose(f))
				ret = -EIO;
			f = NULL;
			if (ret || pl->nfloors == MAX_LINES)
				break;
			snprintf(last, sizeof(last), "%s", PQgetvalue(res, i, 0));
			snprintf(path, sizeof(path), "%s/%u.floor", pl->dir, ++pl->nfloors);
			f = fopen(path, "w");
			if (!f) {
				ret = -EIO;
				break;
			}
			plot_title(ftitle, sizeof(ftitle), last);
			fprintf(f, "x \"floor: %s\"\n", ftitle);
		}
		if (x >= 0)
			fprintf(f, "%d %s\n", x, PQgetvalue(res, i, 2));
	}
	if (f && fclose(f))
		ret = -EIO;
	PQclear(res);
	return ret;
}

static int slurp(const char *path, struct buf *b);

static int run_gnuplot(struct plot *pl, const char *template)
{
	char vars[8300], out[4200], log[4200];
	char *argv[] = { "gnuplot", "-e", vars, (char *)template, NULL };
	posix_spawn_file_actions_t fa;
	int status, ret;
	pid_t pid;

	snprintf(vars, sizeof(vars), "dir='%s'; nlines=%u; nfloors=%u", pl->dir, pl->nlines,
		 pl->nfloors);
	snprintf(out, sizeof(out), "%s/plot.svg", pl->dir);
	snprintf(log, sizeof(log), "%s/gnuplot.log", pl->dir);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ret = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (ret) {
		log_err("gnuplot: %s", strerror(ret));
		return -EIO;
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		struct buf msg = { 0 };

		slurp(log, &msg);
		for (size_t i = 0; i < msg.len; i++)
			if (msg.p[i] == '\n')
				msg.p[i] = ' ';
		log_err("gnuplot %s failed: %.500s", template, msg.p ? msg.p : "");
		buf_free(&msg);
		return -EIO;
	}
	return 0;
}

static int slurp(const char *path, struct buf *b)
{
	char chunk[16384];
	size_t n;
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(b, chunk, n);
	fclose(f);
	return b->oom ? -ENOMEM : 0;
}

static void remove_dir(const char *dir)
{
	struct dirent *e;
	char path[4400];
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(dir);
}

/* Older renders of a plot whose data has changed since. */
static void drop_stale(const char *kind, const char *id, const char *keep)
{
	const char *base = strrchr(keep, '/') + 1;
	/* Renders of the same data for other ranges (".r<from>-<to>") stay. */
	size_t same = strstr(base, ".r") ? (size_t)(strstr(base, ".r") - base) : strlen(base);
	char prefix[64], path[4400];
	struct dirent *e;
	DIR *d;

	snprintf(prefix, sizeof(prefix), "%s-%s-", kind, id);
	d = opendir(conf->cache_dir);
	if (!d)
		return;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, prefix, strlen(prefix)) &&
		    strncmp(e->d_name, base, same + 2)) {
			snprintf(path, sizeof(path), "%s/%s", conf->cache_dir, e->d_name);
			unlink(path);
		}
	closedir(d);
}

/* Settings of this plot: title, commits on x, change points, annotations. */
static int write_setup(PGconn *c, struct plot *pl, const char *id, bool compare)
{
	struct buf b = { 0 };
	char path[4200];
	PGresult *res;
	size_t step;
	FILE *f;
	int ret;

	ret = db_exec(c, &res, "SELECT bench || '.' || metric, unit," PARAMS_TEXT("params")
		      ", backend FROM series WHERE id = $1", 1, &id);
	if (ret)
		return ret;
	buf_printf(&b, "set title ");
	buf_gp(&b, PQgetvalue(res, 0, 0), 200);
	buf_printf(&b, compare ? ".\" (kmmu and KVM)\"" : "");
	buf_printf(&b, " noenhanced\nset label 100 ");
	buf_gp(&b, PQgetvalue(res, 0, 2), 300);
	buf_printf(&b, " at graph 0, graph 1.03 left font ',8' noenhanced\nset ylabel ");
	buf_gp(&b, PQgetvalue(res, 0, 1), 40);
	buf_printf(&b, " noenhanced\nset xrange [-0.5:%zu.5]\nset xtics (", pl->ncommits - 1);
	PQclear(res);
	step = pl->ncommits / 8 + 1;
	for (size_t x = 0; x < pl->ncommits; x += step)
		buf_printf(&b, "%s'%.7s' %zu", x ? ", " : "", pl->shas[x], x);
	buf_printf(&b, ")\ndashes = '");
	for (unsigned int i = 0; i < pl->nlines; i++)
		buf_printf(&b, "%s%d", i ? " " : "", strncmp(pl->lines[i].title, "KVM ", 4) ? 1 : 2);
	buf_printf(&b, "'\n");

	ret = db_exec(c, &res, "SELECT p.commit_id, p.new_median, p.rel_change, p.kind, p.state,"
		      " m.label || ' ' || p.branch, p.weakened IS NOT NULL FROM change_points p"
		      " JOIN machine_labels m ON m.id = p.machine_id WHERE p.series_id = $1", 1, &id);
	if (ret)
		goto out;
	for (int i = 0; i < PQntuples(res); i++) {
		int x = commit_x(pl, atoll(PQgetvalue(res, i, 0)));
		bool reg = !strcmp(PQgetvalue(res, i, 3), "regression");
		char label[160];

		if (x < 0)
			continue;
		snprintf(label, sizeof(label), "%+.1f%% %s %s (%s%s)",
			 100 * atof(PQgetvalue(res, i, 2)), PQgetvalue(res, i, 5),
			 PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
			 *PQgetvalue(res, i, 6) == 't' ? ", weakened" : "");
		buf_printf(&b, "set label %d ", 200 + i);
		buf_gp(&b, label, sizeof(label));
		buf_printf(&b, " at %d, %.17g point pt 7 ps 1.4 lc rgb '%s' offset 0.8,0.8 front"
			   " tc rgb '%s' font ',9' noenhanced\n", x, atof(PQgetvalue(res, i, 1)),
			   reg ? "#c62828" : "#2e7d32", reg ? "#c62828" : "#2e7d32");
	}
	PQclear(res);

	ret = db_exec(c, &res, "SELECT a.commit_id, coalesce(a.host_class || ': ', '') || a.text"
		      " FROM annotations a WHERE a.bench IS NULL OR a.bench ="
		      " (SELECT bench FROM series WHERE id = $1) ORDER BY a.id", 1, &id);
	if (ret)
		goto out;
	for (int i = 0; i < PQntuples(res); i++) {
		int x = commit_x(pl, atoll(PQgetvalue(res, i, 0)));

		if (x < 0)
			continue;
		buf_printf(&b, "set arrow %d from %d, graph 0 to %d, graph 1 nohead dt 2 lw 1.5"
			   " lc rgb '#6a1b9a' back\nset label %d ", 1 + i, x, x, 1000 + i);
		buf_gp(&b, PQgetvalue(res, i, 1), 120);
		buf_printf(&b, " at %d, graph 0.97 rotate by 90 right offset -0.6,0 font ',8'"
			   " tc rgb '#6a1b9a' noenhanced\n", x);
	}
	PQclear(res);
	res = NULL;
	snprintf(path, sizeof(path), "%s/setup.gp", pl->dir);
	f = fopen(path, "w");
	if (!f || b.oom || fwrite(b.p, 1, b.len, f) != b.len)
		ret = -EIO;
	if (f && fclose(f))
		ret = -EIO;
out:
	buf_free(&b);
	return ret;
}

/* Commits of the series (and of its KVM counterpart) in commit order. */
static int load_commits(PGconn *c, struct plot *pl, const char *const *ids,
			const struct plot_range *r)
{
	char lo[24], hi[24];
	const char *p[4] = { ids[0], ids[1], lo, hi };
	PGresult *res;
	int ret, n;

	snprintf(lo, sizeof(lo), "%lld", r ? r->from : 0);
	snprintf(hi, sizeof(hi), "%lld", r ? r->to : 0);
	ret = db_exec(c, &res, "SELECT DISTINCT c.id, c.sha, c.committed, c.gen FROM results r"
		      " JOIN runs u ON u.id = r.run_id JOIN commits c ON c.id = u.commit_id"
		      " WHERE r.series_id IN ($1, $2) AND u.retracted IS NULL AND NOT u.dirty"
		      " AND ($3::bigint = 0 OR c.gen >= $3) AND ($4::bigint = 0 OR c.gen <= $4)"
		      " ORDER BY c.gen, c.committed, c.id", 4, p);
	if (ret)
		return ret;
	n = PQntuples(res);
	if (!n) {
		PQclear(res);
		return r && (r->from || r->to) ? -ERANGE : -ENOENT;
	}
	pl->commits = calloc(n, sizeof(*pl->commits));
	pl->shas = calloc(n, sizeof(*pl->shas));
	if (!pl->commits || !pl->shas) {
		PQclear(res);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		pl->commits[i] = atoll(PQgetvalue(res, i, 0));
		snprintf(pl->shas[i], sizeof(pl->shas[i]), "%s", PQgetvalue(res, i, 1));
	}
	pl->ncommits = n;
	PQclear(res);
	return 0;
}

/*
 * The SVG of a series, or with compare of the series and its KVM
 * counterpart; rendered when the cache has none for this version of
 * the data.
 */
int plot_series(PGconn *c, long long id, bool compare, const struct plot_range *range,
		struct buf *svg)
{
	char id_s[24], kvm_s[24] = "0", key[4400], tmpl[4200];
	const char *ids[2] = { id_s, kvm_s };
	struct plot pl = { 0 };
	PGresult *res;
	int ret;

	snprintf(id_s, sizeof(id_s), "%lld", id);
	if (compare) {
		long long kvm = kvm_counterpart(c, id_s);

		if (kvm <= 0)
			return kvm < 0 ? -EIO : -ENOENT;
		snprintf(kvm_s, sizeof(kvm_s), "%lld", kvm);
	}
	ret = db_exec(c, &res, "SELECT (SELECT version FROM series WHERE id = $1),"
		      " coalesce((SELECT version FROM series WHERE id = $2), 0),"
		      " (SELECT coalesce(max(id), 0) FROM annotations)", 2, ids);
	if (ret)
		return ret;
	if (PQgetisnull(res, 0, 0)) {
		PQclear(res);
		return -ENOENT;
	}
	snprintf(key, sizeof(key), "%s/%s-%s-%s.%s.%s.%s.r%lld-%lld.svg", conf->cache_dir,
		 compare ? "compare" : "series", id_s, PQgetvalue(res, 0, 0), kvm_s,
		 PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), range ? range->from : 0,
		 range ? range->to : 0);
	PQclear(res);
	if (!slurp(key, svg))
		return 0;
	svg->len = 0;
	svg->oom = false;

	snprintf(pl.dir, sizeof(pl.dir), "%s/render-XXXXXX", conf->cache_dir);
	if (!mkdtemp(pl.dir)) {
		log_err("plot: %s: %s", pl.dir, strerror(errno));
		return -EIO;
	}
	ret = load_commits(c, &pl, ids, range);
	if (!ret)
		ret = add_series(c, &pl, id_s, compare ? "kmmu " : "");
	if (!ret && compare)
		ret = add_series(c, &pl, kvm_s, "KVM ");
	if (!ret && !compare)
		ret = add_floors(c, &pl, id_s);
	for (unsigned int i = 0; i < pl.nlines; i++) {
		if (fclose(pl.lines[i].medians) | fclose(pl.lines[i].samples))
			ret = ret ? ret : -EIO;
	}
	if (!ret)
		ret = write_setup(c, &pl, id_s, compare);
	if (!ret) {
		snprintf(tmpl, sizeof(tmpl), "%s/series.gp", conf->plots_dir);
		ret = run_gnuplot(&pl, tmpl);
	}
	if (!ret) {
		char out[4200];

		snprintf(out, sizeof(out), "%s/plot.svg", pl.dir);
		ret = slurp(out, svg);
		/* Concurrent renders of one key write the same bytes. */
		if (!ret && rename(out, key))
			log_warn("plot cache %s: %s", key, strerror(errno));
		if (!ret)
			drop_stale(compare ? "compare" : "series", id_s, key);
	}
	if (!ret && (!svg->len || !strstr(svg->p, "<svg"))) {
		log_err("plot of series %s: gnuplot wrote no SVG", id_s);
		ret = -EIO;
	}
	remove_dir(pl.dir);
	free(pl.commits);
	free(pl.shas);
	return ret;
}

/* ---- compare: two commits side by side ---- */

/* The median floor of series s's runs at row x's commit and machine. */
#define FLOOR_AT(x) "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY r.floor_median)" \
	" FROM results r JOIN runs u ON u.id = r.run_id JOIN hosts h ON h.id = u.host_id" \
	" WHERE r.series_id = s.id AND u.commit_id = " x ".commit_id AND h.machine = " \
	x ".machine_id AND r.floor_median IS NOT NULL AND u.retracted IS NULL AND NOT u.dirty"

#define COMPARE_ALPHA 0.05

/* The usual marks: * p < 0.05, ** p < 0.01, *** p < 0.001. */
static const char *stars(double p)
{
	return p < 0.001 ? "***" : p < 0.01 ? "**" : p < 0.05 ? "*" : "";
}

struct cmp_row {
	long long	series;
	char		*name, *params, *backend, *unit, *host_class, *machine;
	bool		lower_is_better;
	double		base, head, ratio, change, p;
	double		base_floor, head_floor;	/* NaN when not measured */
	size_t		nbase, nhead;
	const char	*verdict;		/* regression, improvement or "" */
};

static int cmp_rows(const void *a, const void *b)
{
	const struct cmp_row *x = a, *y = b;

	if (!*x->verdict != !*y->verdict)
		return *x->verdict ? -1 : 1;
	if (fabs(x->change) != fabs(y->change))
		return fabs(x->change) > fabs(y->change) ? -1 : 1;
	return x->series < y->series ? -1 : x->series > y->series;
}

/* The one commit whose sha starts with @prefix (7 to 40 hex digits). */
static int resolve_sha(PGconn *c, const char *prefix, char *sha, char *why, size_t whylen)
{
	PGresult *res;
	size_t n = strlen(prefix);
	int ret;

	if (n < 7 || n > 40 || strspn(prefix, "0123456789abcdef") != n) {
		snprintf(why, whylen, "'%.40s' is not 7 to 40 lowercase hex digits of a commit",
			 prefix);
		return -EINVAL;
	}
	ret = db_exec(c, &res, "SELECT sha FROM commits WHERE sha LIKE $1 || '%' ORDER BY sha"
		      " LIMIT 2", 1, &prefix);
	if (ret)
		return ret;
	n = PQntuples(res);
	if (n != 1) {
		snprintf(why, whylen, n ? "%s names more than one commit" : "no run of commit %s",
			 prefix);
		PQclear(res);
		return n ? -EINVAL : -ENOENT;
	}
	snprintf(sha, 41, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

static double floor_of(PGresult *res, int i, int col)
{
	return PQgetisnull(res, i, col) ? NAN : atof(PQgetvalue(res, i, col));
}

/*
 * Every series measured at both commits, per host class: both medians, the
 * ratio head/base, the two-sided Mann-Whitney U p-value of their pooled
 * samples, and the floors.  A row is a regression or an improvement when
 * p < 0.05 and the change is at least detect_min_magnitude: one planned
 * comparison, where detection's alpha, set for its scan over many splits,
 * would need more samples than a commit has (5 against 5 give p >= 0.008).
 * Dirty and retracted runs are left out.
 */
static int compare_rows(PGconn *c, const char *base, const char *head, const char *host_class,
			struct cmp_row **rows, size_t *nrows)
{
	const char *p[3] = { base, head, host_class };
	PGresult *res;
	int ret, n;

	*rows = NULL;
	*nrows = 0;
	/*
	 * Per machine: a branch is compared with the commit it forked from on
	 * the same machine, whatever branch each run was on.
	 */
	ret = db_exec(c, &res, "WITH cs AS (SELECT series_id, machine_id, host_class, commit_id,"
		      " array_agg(v) AS samples FROM commit_samples CROSS JOIN LATERAL"
		      " unnest(samples) v WHERE commit_id IN (SELECT id FROM commits"
		      " WHERE sha IN ($1, $2)) GROUP BY 1, 2, 3, 4)"
		      " SELECT s.id, s.bench || '.' || s.metric," PARAMS_TEXT("s.params")
		      ", s.backend, s.unit, s.lower_is_better, a.host_class, a.samples,"
		      " b.samples, (" FLOOR_AT("a") "), (" FLOOR_AT("b") "), m.label"
		      " FROM cs a JOIN cs b ON b.series_id = a.series_id"
		      " AND b.machine_id = a.machine_id JOIN series s ON s.id = a.series_id"
		      " JOIN machine_labels m ON m.id = a.machine_id"
		      " WHERE a.commit_id = (SELECT id FROM commits WHERE sha = $1)"
		      " AND b.commit_id = (SELECT id FROM commits WHERE sha = $2)"
		      " AND ($3::text IS NULL OR a.host_class = $3)", 3, p);
	if (ret)
		return ret;
	n = PQntuples(res);
	*rows = calloc(n ? n : 1, sizeof(**rows));
	if (!*rows) {
		PQclear(res);
		return -ENOMEM;
	}
	for (int i = 0; i < n && !ret; i++) {
		struct cmp_row *r = &(*rows)[i];
		double *a = NULL, *b = NULL;
		bool worse;

		r->series = atoll(PQgetvalue(res, i, 0));
		r->name = strdup(PQgetvalue(res, i, 1));
		r->params = strdup(PQgetvalue(res, i, 2));
		r->backend = strdup(PQgetvalue(res, i, 3));
		r->unit = strdup(PQgetvalue(res, i, 4));
		r->lower_is_better = *PQgetvalue(res, i, 5) == 't';
		r->host_class = strdup(PQgetvalue(res, i, 6));
		r->machine = strdup(PQgetvalue(res, i, 11));
		(*nrows)++;
		if (!r->name || !r->params || !r->backend || !r->unit || !r->host_class ||
		    !r->machine ||
		    parse_float_array(PQgetvalue(res, i, 7), &a, &r->nbase) ||
		    parse_float_array(PQgetvalue(res, i, 8), &b, &r->nhead) ||
		    !r->nbase || !r->nhead) {
			free(a);
			free(b);
			ret = -ENOMEM;
			break;
		}
		r->base = median_of(a, r->nbase);
		r->head = median_of(b, r->nhead);
		r->p = detect_mwu(a, r->nbase, b, r->nhead);
		free(a);
		free(b);
		r->ratio = r->base ? r->head / r->base : NAN;
		r->change = r->base ? (r->head - r->base) / fabs(r->base) : NAN;
		r->base_floor = floor_of(res, i, 9);
		r->head_floor = floor_of(res, i, 10);
		worse = r->lower_is_better ? r->head > r->base : r->head < r->base;
		r->verdict = r->p < COMPARE_ALPHA &&
			     fabs(r->change) >= conf->detect.min_magnitude ?
			     (worse ? "regression" : "improvement") : "";
	}
	PQclear(res);
	qsort(*rows, *nrows, sizeof(**rows), cmp_rows);
	return ret;
}

static void free_rows(struct cmp_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].name);
		free(rows[i].params);
		free(rows[i].backend);
		free(rows[i].unit);
		free(rows[i].host_class);
		free(rows[i].machine);
	}
	free(rows);
}

static json_t *num_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

int compare_commits(PGconn *c, const char *base_arg, const char *head_arg,
		    const char *host_class, bool html, struct buf *b, char *why, size_t whylen)
{
	char base[41], head[41];
	struct cmp_row *rows;
	size_t n;
	int ret;

	if (!base_arg || !head_arg) {
		snprintf(why, whylen, "takes base and head, each 7 to 40 hex digits of a commit");
		return -EINVAL;
	}
	ret = resolve_sha(c, base_arg, base, why, whylen);
	if (!ret)
		ret = resolve_sha(c, head_arg, head, why, whylen);
	if (!ret)
		ret = compare_rows(c, base, head, host_class, &rows, &n);
	if (ret)
		return ret;
	if (!html) {
		json_t *o = json_pack("{s:s, s:s, s:o}", "base", base, "head", head, "rows",
				      json_array());
		char *text;

		for (size_t i = 0; o && i < n; i++) {
			struct cmp_row *r = &rows[i];

			json_array_append_new(json_object_get(o, "rows"), json_pack(
				"{s:I, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:f, s:f, s:o, s:o, s:f,"
				" s:I, s:I, s:o, s:o, s:s, s:s}",
				"series", (json_int_t)r->series, "name", r->name, "params",
				r->params, "backend", r->backend, "unit", r->unit,
				"lower_is_better", r->lower_is_better, "host_class", r->host_class,
				"machine", r->machine, "base_median", r->base, "head_median", r->head,
				"ratio", num_or_null(r->ratio), "change", num_or_null(r->change),
				"p", r->p, "base_samples", (json_int_t)r->nbase,
				"head_samples", (json_int_t)r->nhead,
				"base_floor", num_or_null(r->base_floor),
				"head_floor", num_or_null(r->head_floor), "verdict", r->verdict,
				"mark", stars(r->p)));
		}
		text = o ? json_dumps(o, JSON_INDENT(1)) : NULL;
		json_decref(o);
		if (text)
			buf_printf(b, "%s\n", text);
		free(text);
		free_rows(rows, n);
		return text ? 0 : -ENOMEM;
	}

	page_start(b, "Compare two commits");
	buf_printf(b, "<p>base ");
	commit_link(b, base);
	buf_printf(b, " against head ");
	commit_link(b, head);
	buf_printf(b, "%s", host_class ? ", host class " : "");
	if (host_class)
		buf_html(b, host_class);
	buf_printf(b, ". p: two-sided Mann-Whitney U on the raw samples (* &lt; 0.05, "
		   "** &lt; 0.01, *** &lt; 0.001); a change is a regression or an improvement "
		   "when p &lt; %g and it is at least %g%%. Those first, then by size. "
		   "<a href=\"/api/v1/compare?base=%s&amp;head=%s\">JSON</a></p>\n",
		   COMPARE_ALPHA, 100 * conf->detect.min_magnitude, base, head);
	buf_printf(b, "<table><tr><th>series</th><th>machine</th><th class=\"num\">base</th>"
		   "<th class=\"num\">head</th><th class=\"num\">head/base</th>"
		   "<th class=\"num\">p</th><th>verdict</th><th class=\"num\">floor base</th>"
		   "<th class=\"num\">floor head</th></tr>\n");
	for (size_t i = 0; i < n; i++) {
		struct cmp_row *r = &rows[i];

		buf_printf(b, "<tr class=\"%s\"><td><a href=\"/series/%lld\">", r->verdict,
			   r->series);
		buf_html(b, r->name);
		buf_printf(b, "</a> <small>");
		buf_html(b, r->backend);
		buf_printf(b, " ");
		buf_html(b, r->params);
		buf_printf(b, "</small></td><td>");
		buf_html(b, r->machine);
		buf_printf(b, " <small>");
		buf_html(b, r->host_class);
		buf_printf(b, "</small></td><td class=\"num\">%.4g</td><td class=\"num\">%.4g ", r->base,
			   r->head);
		buf_html(b, r->unit);
		buf_printf(b, "</td><td class=\"num\">%.3f (%+.1f%%)</td><td class=\"num\">%s%.2g"
			   "%s</td><td>%s</td>", r->ratio, 100 * r->change,
			   r->p < 1e-6 ? "&lt; " : "", r->p < 1e-6 ? 1e-6 : r->p, stars(r->p),
			   *r->verdict ? r->verdict : "&mdash;");
		if (isfinite(r->base_floor) && isfinite(r->head_floor))
			buf_printf(b, "<td class=\"num\">%.3g</td><td class=\"num\">%.3g ns/entry"
				   "</td>", r->base_floor, r->head_floor);
		else
			buf_printf(b, "<td></td><td></td>");
		buf_printf(b, "</tr>\n");
	}
	buf_printf(b, "</table>\n%s</body></html>\n", n ? "" :
		   "<p>No series was measured at both commits.</p>\n");
	free_rows(rows, n);
	return 0;
}
