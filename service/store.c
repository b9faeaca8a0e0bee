// SPDX-License-Identifier: GPL-2.0
/*
 * A submitted results document into the database, in one transaction, and
 * detection on the series it touched.
 */
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "regressd.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts v. */
double median_of(double *v, size_t n)
{
	if (!n)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A PostgreSQL float8[] in text form, "{1.5,2,3e-05}". */
int parse_float_array(const char *s, double **out, size_t *n)
{
	size_t cap = 8, k = 0;
	double *v;

	if (*s++ != '{')
		return -EINVAL;
	v = malloc(cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	while (*s && *s != '}') {
		char *end;

		if (k == cap) {
			double *nv = realloc(v, 2 * cap * sizeof(*v));

			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
			cap *= 2;
		}
		v[k++] = strtod(s, &end);
		if (end == s) {
			free(v);
			return -EINVAL;
		}
		s = end;
		if (*s == ',')
			s++;
	}
	*out = v;
	*n = k;
	return 0;
}

static const char *host_class_of(const char *vendor)
{
	if (!strcmp(vendor, "GenuineIntel"))
		return "intel";
	if (!strcmp(vendor, "AuthenticAMD"))
		return "amd";
	return "other";
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* Appends samples as a float8[] literal; their median in *median. */
static int samples_param(const json_t *samples, struct buf *b, double *median)
{
	size_t n = json_array_size(samples), i;
	double *v = calloc(n ? n : 1, sizeof(*v));
	json_t *x;

	if (!v)
		return -ENOMEM;
	buf_add(b, "{", 1);
	json_array_foreach(samples, i, x) {
		v[i] = json_number_value(x);
		buf_printf(b, "%s%.17g", i ? "," : "", v[i]);
	}
	buf_add(b, "}", 1);
	*median = median_of(v, n);
	free(v);
	return b->oom ? -ENOMEM : 0;
}

struct touched {
	long long	*ids;
	size_t		n, cap;
};

static int touch(struct touched *t, long long id)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->ids[i] == id)
			return 0;
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;
		long long *p = realloc(t->ids, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		t->ids = p;
		t->cap = cap;
	}
	t->ids[t->n++] = id;
	return 0;
}

/* The median of the floor named metric that driver run measured. */
static bool floor_median(const json_t *floors, json_int_t run, const char *metric, double *m)
{
	size_t i, n;
	json_t *f;

	json_array_foreach(floors, i, f) {
		const json_t *s = json_object_get(f, "samples");
		double *v;

		if (json_integer_value(json_object_get(f, "run")) != run ||
		    strcmp(str(f, "metric"), metric))
			continue;
		n = json_array_size(s);
		v = calloc(n ? n : 1, sizeof(*v));
		if (!v)
			return false;
		for (size_t k = 0; k < n; k++)
			v[k] = json_number_value(json_array_get(s, k));
		*m = median_of(v, n);
		free(v);
		return true;
	}
	return false;
}

#define FAIL(code, ...) do { snprintf(err, errlen, __VA_ARGS__); ret = (code); goto out; } while (0)

static int insert_results(PGconn *c, long long run_id, const char *backend, const json_t *doc,
			  struct touched *t, char *err, size_t errlen)
{
	const json_t *floors = json_object_get(doc, "floors");
	char run_s[24], drv_s[24], med_s[40], fmed_s[40], entries_s[24];
	struct buf samples = { 0 };
	char *params_key = NULL;
	PGresult *res = NULL;
	int ret = 0;
	size_t i;
	json_t *f;

	snprintf(run_s, sizeof(run_s), "%lld", run_id);
	json_array_foreach(floors, i, f) {
		const char *p[8] = { run_s, drv_s, str(f, "bench"), str(f, "metric"),
				     str(f, "unit"), entries_s, NULL, med_s };
		double median;

		samples.len = 0;
		ret = samples_param(json_object_get(f, "samples"), &samples, &median);
		if (ret)
			FAIL(ret, "out of memory");
		p[6] = samples.p;
		snprintf(drv_s, sizeof(drv_s), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(f, "run")));
		snprintf(entries_s, sizeof(entries_s), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(f, "entries")));
		snprintf(med_s, sizeof(med_s), "%.17g", median);
		ret = db_cmd(c, "INSERT INTO floors (run_id, driver_run, bench, metric, unit,"
			     " entries, samples, median) VALUES ($1, $2, $3, $4, $5, $6,"
			     " $7::float8[], $8)", 8, p);
		if (ret)
			FAIL(ret, "floor %zu: not stored", i);
	}

	json_array_foreach(json_object_get(doc, "results"), i, f) {
		const json_t *params = json_object_get(f, "params");
		const char *floor = json_string_value(json_object_get(f, "floor"));
		json_int_t drv = json_integer_value(json_object_get(f, "run"));
		bool lib = json_is_true(json_object_get(f, "lower_is_better"));
		const char *sp[7], *rp[7];
		double median, fmed;
		long long series;

		free(params_key);
		params_key = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
		if (!params_key)
			FAIL(-ENOMEM, "out of memory");
		sp[0] = str(f, "bench");
		sp[1] = str(f, "metric");
		sp[2] = backend;
		sp[3] = params_key;
		sp[4] = str(f, "unit");
		sp[5] = lib ? "t" : "f";
		ret = db_exec(c, &res, "INSERT INTO series (bench, metric, backend, params,"
			      " params_key, unit, lower_is_better)"
			      " VALUES ($1, $2, $3, $4::jsonb, $4, $5, $6)"
			      " ON CONFLICT (bench, metric, backend, params_key)"
			      " DO UPDATE SET version = series.version + 1"
			      " RETURNING id, unit, lower_is_better", 6, sp);
		if (ret)
			FAIL(ret, "results[%zu]: series not stored", i);
		series = atoll(PQgetvalue(res, 0, 0));
		if (strcmp(PQgetvalue(res, 0, 1), sp[4]) || strcmp(PQgetvalue(res, 0, 2), sp[5]))
			FAIL(-EINVAL, "results[%zu]: %s:%s is in %s (%s is better), not in %s",
			     i, sp[0], sp[1], PQgetvalue(res, 0, 1),
			     *PQgetvalue(res, 0, 2) == 't' ? "lower" : "higher", sp[4]);
		PQclear(res);
		res = NULL;

		samples.len = 0;
		ret = samples_param(json_object_get(f, "samples"), &samples, &median);
		if (ret)
			FAIL(ret, "out of memory");
		snprintf(med_s, sizeof(med_s), "%.17g", median);
		snprintf(drv_s, sizeof(drv_s), "%" JSON_INTEGER_FORMAT, drv);
		snprintf(entries_s, sizeof(entries_s), "%lld", series);
		rp[0] = run_s;
		rp[1] = entries_s;
		rp[2] = drv_s;
		rp[3] = samples.p;
		rp[4] = med_s;
		rp[5] = floor;
		rp[6] = NULL;
		if (floor) {
			if (!floor_median(floors, drv, floor, &fmed))
				FAIL(-EINVAL, "results[%zu]: compared with floor '%s', which run %"
				     JSON_INTEGER_FORMAT " did not measure", i, floor, drv);
			snprintf(fmed_s, sizeof(fmed_s), "%.17g", fmed);
			rp[6] = fmed_s;
		}
		ret = db_cmd(c, "INSERT INTO results (run_id, series_id, driver_run, samples,"
			     " median, floor_metric, floor_median)"
			     " VALUES ($1, $2, $3, $4::float8[], $5, $6, $7)", 7, rp);
		if (ret)
			FAIL(ret, "results[%zu]: not stored", i);
		ret = touch(t, series);
		if (ret)
			FAIL(ret, "out of memory");
	}
out:
	PQclear(res);
	free(params_key);
	buf_free(&samples);
	return ret;
}

/* An upsert that returns the row's id, as text into @id. */
static int insert_id(PGconn *c, const char *sql, int n, const char *const *p, char *id,
		     size_t len)
{
	PGresult *res;
	int ret = db_exec(c, &res, sql, n, p);

	if (ret)
		return ret;
	snprintf(id, len, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

/*
 * An ISO 8601 date and time.  PostgreSQL would also take 'yesterday' or
 * 'epoch', which are no commit's time.
 */
static bool iso_time(const char *s)
{
	static const char re[] = "^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}"
		"(:[0-9]{2}([.][0-9]{1,9})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$";
	regex_t r;
	bool ok;

	if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB))
		return false;
	ok = !regexec(&r, s, 0, NULL, 0);
	regfree(&r);
	return ok;
}

/*
 * Give a new commit its place (sql/004_commit_order.sql): after its parent
 * when the service has it, else after every commit committed before it; then
 * move its children and their descendants after it.  Under a lock, so that
 * two submissions place their commits one after the other.  CYCLE: a
 * document may name any parent, a loop of them included.
 */
static int place_commit(PGconn *c, const char *commit_id)
{
	const char *p[1] = { commit_id };
	int ret;

	ret = db_cmd(c, "SELECT pg_advisory_xact_lock(7107)", 0, NULL);
	if (!ret)
		ret = db_cmd(c, "UPDATE commits x SET gen = coalesce("
			     " (SELECT q.gen + 1 FROM commits q WHERE q.sha = x.parent_sha"
			     " AND q.gen IS NOT NULL AND q.id <> x.id),"
			     " (SELECT coalesce(max(o.gen), 0) + 1 FROM commits o"
			     " WHERE o.committed <= x.committed AND o.id <> x.id))"
			     " WHERE x.id = $1 AND x.gen IS NULL", 1, p);
	if (!ret)
		ret = db_cmd(c, "WITH RECURSIVE d (id, sha, gen) AS ("
			     " SELECT id, sha, gen FROM commits WHERE id = $1"
			     " UNION ALL"
			     " SELECT k.id, k.sha, d.gen + 1 FROM commits k JOIN d"
			     " ON k.parent_sha = d.sha"
			     ") CYCLE id SET looped USING path,"
			     " m AS (SELECT id, max(gen) AS gen FROM d WHERE NOT looped GROUP BY id)"
			     " UPDATE commits k SET gen = m.gen FROM m"
			     " WHERE k.id = m.id AND k.id <> $1 AND k.gen < m.gen", 1, p);
	return ret;
}

int store_run(PGconn *c, long long token_id, const json_t *doc, struct submit_result *out,
	      char *err, size_t errlen)
{
	const json_t *host = json_object_get(doc, "host");
	const json_t *commit = json_object_get(doc, "commit");
	const char *class = host_class_of(str(host, "cpu_vendor"));
	char host_id[24], machine_id[24], commit_id[24], token_s[24], cores[24], mem[24];
	struct touched t = { 0 };
	PGresult *res = NULL;
	char *canon;
	int ret;

	memset(out, 0, sizeof(*out));
	canon = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	if (!canon) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(token_s, sizeof(token_s), "%lld", token_id);
	snprintf(cores, sizeof(cores), "%" JSON_INTEGER_FORMAT,
		 json_integer_value(json_object_get(host, "cores")));
	snprintf(mem, sizeof(mem), "%" JSON_INTEGER_FORMAT,
		 json_integer_value(json_object_get(host, "memory_bytes")));

	if (!iso_time(str(commit, "time")) || !iso_time(str(doc, "created"))) {
		snprintf(err, errlen, "commit.time and created must be ISO 8601 times");
		free(canon);
		return -EINVAL;
	}
	ret = db_begin(c);
	if (ret)
		FAIL(ret, "database unavailable");
	{
		const char *mid = json_string_value(json_object_get(host, "machine_id"));
		const char *p[7] = { mid, str(host, "name"), str(host, "cpu_vendor"),
				     str(host, "cpu_model"), cores, class };

		/* sql/006_machines_branches.sql: what names a machine. */
		ret = insert_id(c, "INSERT INTO machines (key, machine_id, name, host_class)"
				" VALUES (CASE WHEN $1::text IS NULL THEN 'host:' || $2 ELSE"
				" 'id:' || $1 END || '|' || $3 || '|' || $4 || '|' || $5, $1, $2, $6)"
				" ON CONFLICT (key) DO UPDATE SET name = EXCLUDED.name RETURNING id",
				6, p, machine_id, sizeof(machine_id));
		if (ret)
			FAIL(ret, "machine: not stored");
	}
	{
		const char *p[8] = { str(host, "name"), str(host, "cpu_vendor"),
				     str(host, "cpu_model"), cores, mem, str(host, "kernel"),
				     class, machine_id };

		ret = insert_id(c, "INSERT INTO hosts (name, cpu_vendor, cpu_model, cores,"
				" memory_bytes, kernel, host_class, machine)"
				" VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
				" ON CONFLICT (machine, name, cpu_vendor, cpu_model, cores,"
				" memory_bytes, kernel)"
				" DO UPDATE SET host_class = EXCLUDED.host_class RETURNING id", 8, p,
				host_id, sizeof(host_id));
		if (ret)
			FAIL(ret, "host: not stored");
	}
	{
		const char *p[4] = { str(commit, "sha"), str(commit, "time"), str(commit, "branch"),
				     json_string_value(json_object_get(commit, "parent")) };

		ret = insert_id(c, "INSERT INTO commits (sha, committed, branch, parent_sha)"
				" VALUES ($1, $2::timestamptz, $3, $4)"
				" ON CONFLICT (sha) DO UPDATE SET"
				" parent_sha = coalesce(commits.parent_sha, EXCLUDED.parent_sha)"
				" RETURNING id", 4, p, commit_id, sizeof(commit_id));
		if (ret)
			FAIL(ret, "commit: not stored (is time an ISO 8601 date?)");
		ret = place_commit(c, commit_id);
		if (ret)
			FAIL(ret, "commit: not placed");
	}
	{
		const char *p[9] = { canon, host_id, commit_id, str(host, "backend"),
				     str(host, "spte_format"),
				     json_is_true(json_object_get(commit, "dirty")) ? "t" : "f",
				     str(doc, "created"), token_s, str(commit, "branch") };

		ret = db_exec(c, &res, "INSERT INTO runs (digest, document, host_id, commit_id,"
			      " backend, spte_format, dirty, created, token_id, branch)"
			      " VALUES (sha256(convert_to($1, 'UTF8')), $1::jsonb, $2, $3, $4, $5,"
			      " $6, $7::timestamptz, $8, $9)"
			      " ON CONFLICT (digest) DO NOTHING RETURNING id", 9, p);
		if (ret)
			FAIL(ret, "run: not stored");
		if (PQntuples(res) == 0) {
			/* The same document again: the run that is already stored. */
			PQclear(res);
			db_rollback(c);
			ret = db_exec(c, &res, "SELECT id FROM runs"
				      " WHERE digest = sha256(convert_to($1, 'UTF8'))", 1, p);
			if (ret || PQntuples(res) != 1)
				FAIL(ret ? ret : -EIO, "run: lookup failed");
			out->run_id = atoll(PQgetvalue(res, 0, 0));
			out->duplicate = true;
			goto out;
		}
		out->run_id = atoll(PQgetvalue(res, 0, 0));
		PQclear(res);
		res = NULL;
	}
	ret = insert_results(c, out->run_id, str(host, "backend"), doc, &t, err, errlen);
	if (ret)
		goto out;
	ret = db_commit(c);
	if (ret)
		FAIL(ret, "commit failed");
	out->results = json_array_size(json_object_get(doc, "results"));
	out->series = t.n;

	/* The run is stored; detection failing does not undo it. */
	for (size_t i = 0; i < t.n; i++) {
		unsigned int found = 0;

		if (!detect_series(c, t.ids[i], machine_id, str(commit, "branch"), commit_id,
				   false, &found))
			out->change_points += found;
	}
out:
	if (ret)
		db_rollback(c);
	PQclear(res);
	free(canon);
	free(t.ids);
	return ret;
}

static int load_points(PGresult *res, struct detect_point **pts, size_t *n)
{
	size_t rows = PQntuples(res);
	struct detect_point *p = calloc(rows ? rows : 1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < rows; i++) {
		double *v;
		size_t k;

		if (parse_float_array(PQgetvalue(res, i, 1), &v, &k) || !k) {
			while (i--)
				free((double *)p[i].samples);
			free(p);
			return -EIO;
		}
		p[i].median = median_of(v, k);
		p[i].samples = v;
		p[i].nsamples = k;
	}
	*pts = p;
	*n = rows;
	return 0;
}

static void free_points(struct detect_point *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((double *)p[i].samples);
	free(p);
}

/*
 * The alert of commit @cid (one per commit), made when missing; its id in
 * @alert.  A new one is queued for the webhook, sent webhook_settle seconds
 * later with what it holds then (notify.c), and *@queued is counted up.
 */
static int alert_of(PGconn *c, const char *cid, char *alert, size_t len, unsigned int *queued)
{
	const char *p[2] = { cid, NULL };
	char settle[24];
	PGresult *res;
	int ret;

	ret = db_exec(c, &res, "INSERT INTO alerts (commit_id) VALUES ($1)"
		      " ON CONFLICT (commit_id) DO UPDATE SET updated = now()"
		      " RETURNING id, xmax = 0", 1, p);
	if (ret)
		return ret;
	snprintf(alert, len, "%s", PQgetvalue(res, 0, 0));
	if (*conf->webhook_url && *PQgetvalue(res, 0, 1) == 't') {
		snprintf(settle, sizeof(settle), "%u", conf->webhook_settle);
		p[0] = alert;
		p[1] = settle;
		ret = db_cmd(c, "INSERT INTO notifications (alert_id, next_try)"
			     " VALUES ($1, now() + $2 * interval '1 second')", 2, p);
		if (!ret)
			(*queued)++;
	}
	PQclear(res);
	return ret;
}

/* A stored change point of the line, and where its commit is in the line. */
struct known_cp {
	char		id[24];
	size_t		idx;		/* SIZE_MAX: its commit has no points now */
	bool		regression, matched;
};

/* Where commit id sits in ids[0..n), or SIZE_MAX. */
static size_t index_of(const long long *ids, size_t n, long long id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return i;
	return SIZE_MAX;
}

/*
 * The stored change point a found one is: one at the same commit, else the
 * nearest of the same direction within min_size commits not yet taken.
 */
static struct known_cp *match_known(struct known_cp *k, size_t nk, size_t g, bool regression,
				    size_t zlo, size_t zhi, size_t tol)
{
	struct known_cp *best = NULL;
	size_t bd = SIZE_MAX;

	for (size_t i = 0; i < nk; i++) {
		size_t d;

		if (k[i].matched || k[i].idx < zlo || k[i].idx >= zhi)
			continue;
		if (k[i].idx == g)
			return &k[i];
		d = k[i].idx > g ? k[i].idx - g : g - k[i].idx;
		if (k[i].regression == regression && d <= tol && d < bd) {
			best = &k[i];
			bd = d;
		}
	}
	/* Moving there must not collide with another one already at g. */
	for (size_t i = 0; best && i < nk; i++)
		if (k[i].idx == g)
			return NULL;
	return best;
}

/*
 * Detects on one line of a series (one machine, one branch) and brings its
 * stored change points in line with what it finds.
 *
 * After a submission (pivot, the commit sent) only the points within
 * 2 * detect_window commits of it are read, and only change points within
 * detect_window of it are matched, so the work does not grow with the
 * history; without a pivot the whole line is.  A found change point is an
 * existing one when at the same commit, or of the same direction within
 * detect_min_size commits (then moved): it keeps its id and its state.  A
 * new one is stored and its notification queued in the same transaction.
 * An existing one not found any more is marked weakened, never removed,
 * except with drop_unfound (a retraction took its evidence away) for one
 * nobody had looked at (state new).
 */
int detect_series(PGconn *c, long long series_id, const char *machine_id, const char *branch,
		  const char *pivot, bool drop_unfound, unsigned int *found)
{
	const struct detect_config *cfg = &conf->detect;
	struct detect_change *cps = NULL;
	struct detect_point *pts = NULL;
	struct known_cp *known = NULL;
	long long *ids = NULL, piv = pivot ? atoll(pivot) : -1;
	size_t n = 0, np = 0, nk = 0, lo, hi, zlo, zhi, pos;
	char id_s[24];
	const char *p[4] = { id_s, machine_id, branch, NULL };
	PGresult *res = NULL, *rows = NULL;
	struct buf set = { 0 };
	unsigned int queued = 0, inzone = 0;
	bool lib;
	int ret, k;

	*found = 0;
	snprintf(id_s, sizeof(id_s), "%lld", series_id);
	ret = db_begin(c);
	if (!ret)
		ret = db_cmd(c, "SELECT pg_advisory_xact_lock(7106, $1::int)", 1, p);
	if (!ret)
		ret = db_exec(c, &res, "SELECT lower_is_better FROM series WHERE id = $1", 1, p);
	if (ret)
		goto out;
	lib = PQntuples(res) == 1 && *PQgetvalue(res, 0, 0) == 't';
	PQclear(res);

	/* The line's commits in order: ids only, however long the history. */
	ret = db_exec(c, &res, "SELECT DISTINCT u.commit_id, c.gen, c.committed FROM results r"
		      " JOIN runs u ON u.id = r.run_id JOIN hosts h ON h.id = u.host_id"
		      " JOIN commits c ON c.id = u.commit_id WHERE r.series_id = $1"
		      " AND h.machine = $2 AND u.branch = $3 AND u.retracted IS NULL"
		      " AND NOT u.dirty ORDER BY c.gen, c.committed, u.commit_id", 3, p);
	if (ret)
		goto out;
	n = PQntuples(res);
	ids = calloc(n ? n : 1, sizeof(*ids));
	if (!ids) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		ids[i] = atoll(PQgetvalue(res, i, 0));
	PQclear(res);
	res = NULL;

	pos = index_of(ids, n, piv);
	if (pos == SIZE_MAX) {
		lo = zlo = 0;
		hi = zhi = n;
	} else {
		size_t h = 2 * (size_t)cfg->window, w = cfg->window;

		lo = pos > h ? pos - h : 0;
		hi = n - pos > h + 1 ? pos + h + 1 : n;
		/* At an end of the line there is nothing to leave out. */
		zlo = lo == 0 ? 0 : pos - w;
		zhi = hi == n ? n : pos + w + 1;
	}

	buf_printf(&set, "{");
	for (size_t i = lo; i < hi; i++)
		buf_printf(&set, "%s%lld", i > lo ? "," : "", ids[i]);
	buf_printf(&set, "}");
	if (set.oom) {
		ret = -ENOMEM;
		goto out;
	}
	p[3] = set.p;
	ret = db_exec(c, &rows, "SELECT commit_id, samples FROM commit_samples"
		      " WHERE series_id = $1 AND machine_id = $2 AND branch = $3"
		      " AND commit_id = ANY ($4::bigint[])"
		      " ORDER BY array_position($4::bigint[], commit_id)", 4, p);
	if (!ret)
		ret = load_points(rows, &pts, &np);
	if (ret)
		goto out;
	if (np != hi - lo) {
		/* A retraction or a late parent moved the line meanwhile. */
		ret = -EAGAIN;
		goto out;
	}
	cps = calloc(np ? np : 1, sizeof(*cps));
	if (!cps) {
		ret = -ENOMEM;
		goto out;
	}
	k = detect_changes(pts, np, cfg, cps, np);
	if (k < 0) {
		log_err("detection on series %lld, machine %s, branch %s: %s", series_id,
			machine_id, branch, strerror(-k));
		ret = -EIO;
		goto out;
	}

	ret = db_exec(c, &res, "SELECT id, commit_id, kind = 'regression' FROM change_points"
		      " WHERE series_id = $1 AND machine_id = $2 AND branch = $3", 3, p);
	if (ret)
		goto out;
	nk = PQntuples(res);
	known = calloc(nk ? nk : 1, sizeof(*known));
	if (!known) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nk; i++) {
		snprintf(known[i].id, sizeof(known[i].id), "%s", PQgetvalue(res, i, 0));
		known[i].idx = index_of(ids, n, atoll(PQgetvalue(res, i, 1)));
		known[i].regression = *PQgetvalue(res, i, 2) == 't';
	}
	PQclear(res);
	res = NULL;

	for (int i = 0; i < k && !ret; i++) {
		const struct detect_change *d = &cps[i];
		size_t g = lo + d->index;
		bool regression = detect_kind(d, lib) == DETECT_REGRESSION;
		struct known_cp *e;
		char o[40], nw[40], rel[40], pv[40], mp[40], cid[24], noise[40], eff[40];
		char alert[24], prev[24];
		const char *cp[15] = { id_s, machine_id, branch, cid, o, nw, rel, pv, mp,
				       regression ? "regression" : "improvement", noise, eff,
				       alert, prev, NULL };

		if (g < zlo || g >= zhi)
			continue;
		inzone++;
		snprintf(cid, sizeof(cid), "%lld", ids[g]);
		/* A change point has min_size points before it on its line. */
		snprintf(prev, sizeof(prev), "%lld", ids[g - 1]);
		snprintf(o, sizeof(o), "%.17g", d->old_median);
		snprintf(nw, sizeof(nw), "%.17g", d->new_median);
		/* From a level of 0 the change is infinite: stored as a huge one. */
		snprintf(rel, sizeof(rel), "%.17g", fmax(-1e9, fmin(1e9, d->rel_change)));
		snprintf(pv, sizeof(pv), "%.17g", d->pvalue);
		snprintf(mp, sizeof(mp), "%.17g", d->mwu_pvalue);
		if (isnan(d->noise))
			cp[10] = NULL;
		else
			snprintf(noise, sizeof(noise), "%.17g", d->noise);
		if (isnan(d->effect))
			cp[11] = NULL;
		else
			snprintf(eff, sizeof(eff), "%.17g", fmin(1e9, d->effect));
		e = match_known(known, nk, g, regression, zlo, zhi, cfg->min_size);
		/* One found again where it was keeps its alert: no write for it. */
		if (e && e->idx == g) {
			cp[12] = NULL;
		} else {
			ret = alert_of(c, cid, alert, sizeof(alert), &queued);
			if (ret)
				break;
		}
		if (e) {
			e->matched = true;
			cp[14] = e->id;
			ret = db_cmd(c, "UPDATE change_points SET commit_id = $4, old_median = $5,"
				     " new_median = $6, rel_change = $7, pvalue = $8, mwu_pvalue = $9,"
				     " kind = $10, noise = $11, effect = $12,"
				     " alert_id = coalesce($13::bigint, alert_id),"
				     " prev_commit_id = $14, weakened = NULL, updated = now()"
				     " WHERE id = $15 AND series_id = $1 AND machine_id = $2"
				     " AND branch = $3", 15, cp);
			continue;
		}
		ret = db_cmd(c, "INSERT INTO change_points (series_id, machine_id, branch,"
			     " commit_id, old_median, new_median, rel_change, pvalue, mwu_pvalue,"
			     " kind, noise, effect, alert_id, prev_commit_id, host_class)"
			     " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
			     " host_class FROM machines WHERE id = $2", 14, cp);
	}

	/* What was not found again, within the part of the line looked at. */
	for (size_t i = 0; i < nk && !ret; i++) {
		const char *q[1] = { known[i].id };

		if (known[i].matched ||
		    (known[i].idx != SIZE_MAX && (known[i].idx < zlo || known[i].idx >= zhi)))
			continue;
		if (drop_unfound)
			ret = db_cmd(c, "DELETE FROM change_points WHERE id = $1 AND state = 'new'",
				     1, q);
		if (!ret)
			ret = db_cmd(c, "UPDATE change_points SET weakened = now(), updated = now()"
				     " WHERE id = $1 AND weakened IS NULL", 1, q);
	}
	if (!ret)
		ret = db_cmd(c, "UPDATE series SET version = version + 1 WHERE id = $1", 1, p);
	if (!ret)
		ret = db_commit(c);
	if (!ret)
		*found = inzone;
	if (!ret && queued)
		notify_kick();
out:
	if (ret)
		db_rollback(c);
	PQclear(res);
	PQclear(rows);
	free(cps);
	free(known);
	free(ids);
	buf_free(&set);
	free_points(pts, np);
	return ret;
}

int retract_run(PGconn *c, long long run_id, long long token_id, const char *reason,
		struct retract_result *out)
{
	char id_s[24], tok_s[24];
	const char *p[3] = { id_s, tok_s, reason };
	PGresult *res = NULL, *pairs = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	snprintf(id_s, sizeof(id_s), "%lld", run_id);
	snprintf(tok_s, sizeof(tok_s), "%lld", token_id);
	ret = db_exec(c, &res, "SELECT admin FROM tokens WHERE id = $1 AND NOT revoked", 1, p + 1);
	if (ret)
		return ret;
	if (PQntuples(res) != 1 || *PQgetvalue(res, 0, 0) != 't') {
		PQclear(res);
		return -EACCES;
	}
	PQclear(res);
	res = NULL;

	ret = db_begin(c);
	if (!ret)
		ret = db_exec(c, &res, "SELECT retracted IS NOT NULL FROM runs WHERE id = $1"
			      " FOR UPDATE", 1, p);
	if (ret)
		goto out;
	if (PQntuples(res) != 1) {
		ret = -ENOENT;
		goto out;
	}
	if (*PQgetvalue(res, 0, 0) == 't') {
		ret = -EALREADY;
		goto out;
	}
	PQclear(res);
	res = NULL;
	ret = db_exec(c, &res, "UPDATE runs SET retracted = now(), retracted_by = $2,"
		      " retract_reason = $3 WHERE id = $1 RETURNING retracted", 3, p);
	if (ret)
		goto out;
	snprintf(out->when, sizeof(out->when), "%s", PQgetvalue(res, 0, 0));
	ret = db_exec(c, &pairs, "SELECT DISTINCT r.series_id, h.machine, u.branch FROM results r"
		      " JOIN runs u ON u.id = r.run_id JOIN hosts h ON h.id = u.host_id"
		      " WHERE r.run_id = $1", 1, p);
	if (!ret)
		ret = db_cmd(c, "UPDATE series SET version = version + 1 WHERE id IN"
			     " (SELECT series_id FROM results WHERE run_id = $1)", 1, p);
	if (!ret)
		ret = db_commit(c);
	if (ret)
		goto out;
	log_info("run %lld retracted: %s", run_id, reason);

	/* As after a submission: the retraction stands if detection fails. */
	for (int i = 0; i < PQntuples(pairs); i++) {
		unsigned int found = 0;

		if (!detect_series(c, atoll(PQgetvalue(pairs, i, 0)), PQgetvalue(pairs, i, 1),
				   PQgetvalue(pairs, i, 2), NULL, true, &found))
			out->change_points += found;
		out->series++;
	}
out:
	if (ret)
		db_rollback(c);
	PQclear(res);
	PQclear(pairs);
	return ret;
}

/* At start: the thresholds may have changed since the series were last seen. */
int detect_all(PGconn *c)
{
	PGresult *res;
	unsigned int total = 0;
	int ret;

	ret = db_exec(c, &res, "SELECT DISTINCT r.series_id, h.machine, u.branch FROM results r"
		      " JOIN runs u ON u.id = r.run_id JOIN hosts h ON h.id = u.host_id", 0, NULL);
	if (ret)
		return ret;
	for (int i = 0; i < PQntuples(res) && !ret; i++) {
		unsigned int found;

		ret = detect_series(c, atoll(PQgetvalue(res, i, 0)), PQgetvalue(res, i, 1),
				    PQgetvalue(res, i, 2), NULL, false, &found);
		total += found;
	}
	if (!ret)
		log_info("detection: %u change point%s over %d series", total,
			 total == 1 ? "" : "s", PQntuples(res));
	PQclear(res);
	return ret;
}
