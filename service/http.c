// SPDX-License-Identifier: GPL-2.0
/*
 * kmmu-regressd's HTTP side: libmicrohttpd with a pool of threads, each
 * request on one pooled database connection.  The JSON API under /api/v1,
 * the dashboard and the plots.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <microhttpd.h>

#include "jsonschema.h"
#include "regressd.h"

static struct js_schema *results_schema;

/* Requests begun and not yet answered: what SIGTERM waits for. */
static unsigned long in_flight;

void log_msg(const char *level, const char *fmt, ...)
{
	char stamp[32], line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line, so that threads do not interleave. */
	fprintf(stderr, "%s.%03ldZ kmmu-regressd %s: %s\n", stamp, ts.tv_nsec / 1000000, level,
		line);
}

long long parse_id(const char *s)
{
	long long v = 0;

	if (!*s || strlen(s) > 15)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v > 0 ? v : -1;
}

struct request {
	struct buf	body;
	bool		too_large;
};

static enum MHD_Result respond(struct MHD_Connection *mc, unsigned int status, const char *type,
			       struct buf *b)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (b->oom) {
		buf_free(b);
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		type = "text/plain";
	}
	if (!b->p)
		buf_add(b, "", 0);
	r = MHD_create_response_from_buffer(b->len, b->p, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		buf_free(b);
		return MHD_NO;
	}
	b->p = NULL;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Content-Security-Policy",
				"default-src 'self'; style-src 'self' 'unsafe-inline'");
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "5");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"kmmu-regressd\"");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, POST");
	ret = MHD_queue_response(mc, status, r);
	MHD_destroy_response(r);
	return ret;
}

__attribute__((format(printf, 3, 4)))
static enum MHD_Result fail(struct MHD_Connection *mc, unsigned int status, const char *fmt, ...)
{
	struct buf b = { 0 };
	char msg[1024];
	json_t *o;
	char *s;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = json_pack("{s:s, s:i}", "error", msg, "status", (int)status);
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (s) {
		buf_printf(&b, "%s\n", s);
		free(s);
	} else {
		b.oom = true;
	}
	json_decref(o);
	if (status >= 500)
		log_warn("%u: %s", status, msg);
	return respond(mc, status, "application/json", &b);
}

static enum MHD_Result fail_db(struct MHD_Connection *mc, int err)
{
	if (err == -ENOTCONN)
		return fail(mc, MHD_HTTP_SERVICE_UNAVAILABLE, "database unavailable, retry later");
	return fail(mc, MHD_HTTP_INTERNAL_SERVER_ERROR, "database error");
}

static enum MHD_Result send_json(struct MHD_Connection *mc, unsigned int status, json_t *o)
{
	struct buf b = { 0 };
	char *s = o ? json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;

	json_decref(o);
	if (!s)
		return fail(mc, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	buf_printf(&b, "%s\n", s);
	free(s);
	return respond(mc, status, "application/json", &b);
}

/* Query parameters: only those a route takes, each at most once. */
struct args_check {
	const char *const	*allowed;
	const char		*bad;
};

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				 const char *value)
{
	struct args_check *a = cls;

	for (const char *const *p = a->allowed; *p; p++)
		if (!strcmp(*p, key))
			return MHD_YES;
	a->bad = key;
	return MHD_NO;
}

static const char *bad_arg(struct MHD_Connection *mc, const char *const *allowed)
{
	struct args_check a = { allowed, NULL };

	MHD_get_connection_values(mc, MHD_GET_ARGUMENT_KIND, check_arg, &a);
	return a.bad;
}

static const char *arg(struct MHD_Connection *mc, const char *key)
{
	const char *v = MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, key);

	return v && *v ? v : NULL;
}

/* The id of a token that may submit, 0 for none, <0 on error. */
static long long token_id(PGconn *c, const char *token)
{
	PGresult *res;
	long long id = 0;
	int ret;

	if (!token || !*token || strlen(token) > 256)
		return 0;
	ret = db_exec(c, &res, "SELECT id FROM tokens WHERE NOT revoked AND"
		      " hash = sha256(convert_to($1, 'UTF8'))", 1, &token);
	if (ret)
		return ret;
	if (PQntuples(res) == 1)
		id = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	return id;
}

/* The id of the request's bearer token, 0 when it has no valid one, <0 on error. */
static long long authenticate(struct MHD_Connection *mc, PGconn *c)
{
	const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);

	if (!h || strncasecmp(h, "Bearer ", 7))
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	return token_id(c, h);
}

/* A body that must be a JSON object with a JSON content type. */
static json_t *parse_body(struct MHD_Connection *mc, struct request *r, enum MHD_Result *ret)
{
	const char *type = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_CONTENT_TYPE);
	json_error_t jerr;
	json_t *o;

	if (type && strncasecmp(type, "application/json", 16)) {
		*ret = fail(mc, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
			    "Content-Type must be application/json, not '%.100s'", type);
		return NULL;
	}
	if (!r->body.len) {
		*ret = fail(mc, MHD_HTTP_BAD_REQUEST, "empty body: expected a JSON object");
		return NULL;
	}
	o = json_loadb(r->body.p, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		*ret = fail(mc, MHD_HTTP_BAD_REQUEST, "body is not JSON: %s at line %d column %d",
			    jerr.text, jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		*ret = fail(mc, MHD_HTTP_BAD_REQUEST, "body must be a JSON object");
		return NULL;
	}
	return o;
}

static enum MHD_Result post_run(struct MHD_Connection *mc, PGconn *c, long long token,
				struct request *r)
{
	struct submit_result sr;
	enum MHD_Result mret;
	const json_t *v;
	char err[1024];
	json_t *doc;
	size_t nfig;
	int ret;

	doc = parse_body(mc, r, &mret);
	if (!doc)
		return mret;
	/* Say which version is wrong before listing what it breaks. */
	v = json_object_get(doc, "schema");
	if (!json_is_string(v) || strcmp(json_string_value(v), REGRESSD_SCHEMA)) {
		json_decref(doc);
		return fail(mc, MHD_HTTP_UNPROCESSABLE_CONTENT,
			    "not a results document: \"schema\" must be \"%s\"", REGRESSD_SCHEMA);
	}
	v = json_object_get(doc, "schema_version");
	if (!json_is_integer(v) || json_integer_value(v) != REGRESSD_SCHEMA_VERSION) {
		json_decref(doc);
		return fail(mc, MHD_HTTP_UNPROCESSABLE_CONTENT,
			    "unsupported schema_version (this service takes %d)",
			    REGRESSD_SCHEMA_VERSION);
	}
	/* Counted before the validation, whose work grows with them. */
	nfig = json_array_size(json_object_get(doc, "results")) +
	       json_array_size(json_object_get(doc, "floors"));
	if (nfig > conf->max_results) {
		json_decref(doc);
		return fail(mc, MHD_HTTP_CONTENT_TOO_LARGE,
			    "%zu figures (results and floors) in one document: the most is %u",
			    nfig, conf->max_results);
	}
	if (js_validate(results_schema, doc, err, sizeof(err))) {
		json_decref(doc);
		return fail(mc, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid results document: %s", err);
	}
	err[0] = 0;
	ret = store_run(c, token, doc, &sr, err, sizeof(err));
	json_decref(doc);
	if (ret == -EINVAL || ret == -EEXIST)
		return fail(mc, MHD_HTTP_UNPROCESSABLE_CONTENT, "not stored: %s", err);
	if (ret)
		return fail_db(mc, ret);
	if (!sr.duplicate)
		log_info("run %lld: %u results in %u series, %u change points", sr.run_id,
			 sr.results, sr.series, sr.change_points);
	return send_json(mc, sr.duplicate ? MHD_HTTP_OK : MHD_HTTP_CREATED,
			 json_pack("{s:I, s:b, s:i, s:i, s:i}", "id", (json_int_t)sr.run_id,
				   "duplicate", sr.duplicate, "results", (int)sr.results,
				   "series", (int)sr.series, "change_points",
				   (int)sr.change_points));
}

/* A query whose one row and column is a JSON text, sent as is. */
static enum MHD_Result send_query(struct MHD_Connection *mc, PGconn *c, const char *sql, int n,
				  const char *const *p, bool one)
{
	struct buf b = { 0 };
	PGresult *res;
	int ret;

	ret = db_exec(c, &res, sql, n, p);
	if (ret == -EINVAL)
		return fail(mc, MHD_HTTP_BAD_REQUEST, "bad parameter value");
	if (ret)
		return fail_db(mc, ret);
	if (one && (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))) {
		PQclear(res);
		return fail(mc, MHD_HTTP_NOT_FOUND, "no such object");
	}
	buf_printf(&b, "%s\n", PQntuples(res) ? PQgetvalue(res, 0, 0) : "[]");
	PQclear(res);
	return respond(mc, MHD_HTTP_OK, "application/json", &b);
}

static const char *const states[] = { "new", "acknowledged", "invalid", "fixed", NULL };

static bool is_state(const char *s)
{
	for (const char *const *p = states; *p; p++)
		if (!strcmp(*p, s))
			return true;
	return false;
}

#define CP_SELECT "SELECT p.id, p.series_id, s.bench, s.metric, s.backend, s.params, s.unit," \
	" p.host_class, m.label AS machine, p.branch, c.sha AS commit, c.committed," \
	" p.old_median, p.new_median, p.rel_change, p.noise, p.effect, p.pvalue," \
	" p.mwu_pvalue, p.kind, p.state, p.note, p.detected, p.updated, p.weakened" \
	" FROM change_points p JOIN series s ON s.id = p.series_id" \
	" JOIN machine_labels m ON m.id = p.machine_id JOIN commits c ON c.id = p.commit_id"
#define CP_LIST "SELECT coalesce(json_agg(t ORDER BY t.id DESC), '[]') FROM (" CP_SELECT
#define CP_ONE "SELECT row_to_json(t) FROM (" CP_SELECT " WHERE p.id = $1) t"

static enum MHD_Result get_change_points(struct MHD_Connection *mc, PGconn *c)
{
	static const char *const allowed[] = { "state", "bench", "host_class", "kind", "branch",
					       NULL };
	const char *p[5] = { arg(mc, "state"), arg(mc, "bench"), arg(mc, "host_class"),
			     arg(mc, "kind"), arg(mc, "branch") };
	const char *bad = bad_arg(mc, allowed);

	if (bad)
		return fail(mc, MHD_HTTP_BAD_REQUEST, "unknown parameter '%.64s' (takes state, "
			    "bench, host_class, kind, branch)", bad);
	if (p[0] && !is_state(p[0]))
		return fail(mc, MHD_HTTP_BAD_REQUEST,
			    "state must be new, acknowledged, invalid or fixed");
	if (p[3] && strcmp(p[3], "regression") && strcmp(p[3], "improvement"))
		return fail(mc, MHD_HTTP_BAD_REQUEST, "kind must be regression or improvement");
	return send_query(mc, c, CP_LIST " WHERE ($1::text IS NULL OR p.state = $1)"
			  " AND ($2::text IS NULL OR s.bench = $2)"
			  " AND ($3::text IS NULL OR p.host_class = $3)"
			  " AND ($4::text IS NULL OR p.kind = $4)"
			  " AND ($5::text IS NULL OR p.branch = $5)) t", 5, p, false);
}

/* A bug link: "" or an http(s) URL of at most 1000 bytes without spaces. */
static bool bug_url_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n)
		return true;
	if (n > 1000 || (strncmp(s, "http://", 7) && strncmp(s, "https://", 8)))
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return false;
	return true;
}

/*
 * What people say of alert @id_s: its state, bug link and note, each left
 * as it was when NULL.  -EINVAL a bad value, -ENOENT no such alert.  The
 * plots of its series are drawn again.
 */
static int set_alert(PGconn *c, const char *id_s, const char *state, const char *bug,
		     const char *note)
{
	const char *p[4] = { id_s, state, bug, note };
	PGresult *res = NULL;
	int ret;

	if ((state && !is_state(state)) || (bug && !bug_url_ok(bug)) ||
	    (note && strlen(note) > 1000))
		return -EINVAL;
	ret = db_begin(c);
	if (!ret)
		ret = db_exec(c, &res, "UPDATE alerts SET state = coalesce($2, state),"
			      " bug_url = coalesce($3, bug_url), note = coalesce($4, note),"
			      " updated = now() WHERE id = $1 RETURNING id", 4, p);
	if (!ret && PQntuples(res) != 1)
		ret = -ENOENT;
	if (!ret)
		ret = db_cmd(c, "UPDATE series SET version = version + 1 WHERE id IN"
			     " (SELECT series_id FROM change_points WHERE alert_id = $1)", 1, p);
	if (!ret)
		ret = db_commit(c);
	if (ret)
		db_rollback(c);
	PQclear(res);
	return ret;
}

#define ALERT_ONE "SELECT alert_json(id, $2, $3) FROM alerts WHERE id = $1"

static enum MHD_Result get_alerts(struct MHD_Connection *mc, PGconn *c)
{
	static const char *const allowed[] = { "state", NULL };
	const char *p[3] = { arg(mc, "state"), conf->commit_url, conf->range_url };
	const char *bad = bad_arg(mc, allowed);

	if (bad)
		return fail(mc, MHD_HTTP_BAD_REQUEST, "unknown parameter '%.64s' (takes state)",
			    bad);
	if (p[0] && !is_state(p[0]))
		return fail(mc, MHD_HTTP_BAD_REQUEST,
			    "state must be new, acknowledged, invalid or fixed");
	/* Newest commit first; an alert whose change points all moved away is none. */
	return send_query(mc, c, "SELECT coalesce(json_agg(alert_json(a.id, $2, $3)"
			  " ORDER BY c.gen DESC, c.committed DESC, a.id DESC), '[]')"
			  " FROM alerts a JOIN commits c ON c.id = a.commit_id"
			  " WHERE ($1::text IS NULL OR a.state = $1) AND EXISTS"
			  " (SELECT 1 FROM change_points p WHERE p.alert_id = a.id)", 3, p, false);
}

/* {"state"?, "bug_url"?, "note"?}: what a person says of an alert. */
static enum MHD_Result post_alert(struct MHD_Connection *mc, PGconn *c, long long id,
				  struct request *r)
{
	const char *f[3] = { NULL, NULL, NULL };	/* state, bug_url, note */
	static const char *const names[] = { "state", "bug_url", "note" };
	char id_s[24];
	enum MHD_Result mret;
	const char *key;
	json_t *o, *v;
	int ret, i;

	o = parse_body(mc, r, &mret);
	if (!o)
		return mret;
	json_object_foreach(o, key, v) {
		for (i = 0; i < 3 && strcmp(key, names[i]); i++)
			;
		if (i == 3 || !json_is_string(v)) {
			mret = fail(mc, MHD_HTTP_BAD_REQUEST, "'%.64s': expected \"state\" (new, "
				    "acknowledged, invalid, fixed), \"bug_url\" (\"\" or an http(s) "
				    "URL) and \"note\", strings", key);
			json_decref(o);
			return mret;
		}
		f[i] = json_string_value(v);
	}
	if (!f[0] && !f[1] && !f[2]) {
		json_decref(o);
		return fail(mc, MHD_HTTP_BAD_REQUEST, "nothing to set: state, bug_url or note");
	}
	snprintf(id_s, sizeof(id_s), "%lld", id);
	ret = set_alert(c, id_s, f[0], f[1], f[2]);
	json_decref(o);
	if (ret == -EINVAL)
		return fail(mc, MHD_HTTP_BAD_REQUEST, "state must be new, acknowledged, invalid "
			    "or fixed; bug_url \"\" or an http(s) URL without spaces of at most "
			    "1000 bytes; note at most 1000 bytes");
	if (ret == -ENOENT)
		return fail(mc, MHD_HTTP_NOT_FOUND, "no such alert");
	if (ret)
		return fail_db(mc, ret);
	return send_query(mc, c, ALERT_ONE, 3,
			  (const char *[]){ id_s, conf->commit_url, conf->range_url }, true);
}

/*
 * A person's decision about change point @id_s: its state, and its note
 * unless @note is NULL.  Its series' plots are drawn again.  -ENOENT when
 * there is no such change point; its series' id in *@series.
 */
static int set_cp_state(PGconn *c, const char *id_s, const char *state, const char *note,
			long long *series)
{
	const char *p[3] = { id_s, state, note };
	PGresult *res = NULL;
	int ret;

	ret = db_begin(c);
	if (!ret)
		ret = db_exec(c, &res, "UPDATE change_points SET state = $2,"
			      " note = coalesce($3, note), updated = now() WHERE id = $1"
			      " RETURNING series_id", 3, p);
	if (!ret && PQntuples(res) != 1)
		ret = -ENOENT;
	if (!ret) {
		const char *sp[1] = { PQgetvalue(res, 0, 0) };

		if (series)
			*series = atoll(sp[0]);
		ret = db_cmd(c, "UPDATE series SET version = version + 1 WHERE id = $1", 1, sp);
	}
	if (!ret)
		ret = db_commit(c);
	if (ret)
		db_rollback(c);
	PQclear(res);
	return ret;
}

/* {"state": "...", "note": "..."}: what a person decided about a change point. */
static enum MHD_Result post_change_point(struct MHD_Connection *mc, PGconn *c, long long id,
					 struct request *r)
{
	const char *state = NULL, *note = NULL, *key;
	char id_s[24];
	enum MHD_Result mret;
	json_t *o, *v;
	int ret;

	o = parse_body(mc, r, &mret);
	if (!o)
		return mret;
	json_object_foreach(o, key, v) {
		if (!strcmp(key, "state") && json_is_string(v) && is_state(json_string_value(v))) {
			state = json_string_value(v);
		} else if (!strcmp(key, "note") && json_is_string(v) &&
			   json_string_length(v) <= 1000) {
			note = json_string_value(v);
		} else {
			mret = fail(mc, MHD_HTTP_BAD_REQUEST, "'%.64s': expected \"state\" (new, "
				    "acknowledged, invalid, fixed) and an optional \"note\" "
				    "(a string of at most 1000 characters)", key);
			json_decref(o);
			return mret;
		}
	}
	if (!state) {
		json_decref(o);
		return fail(mc, MHD_HTTP_BAD_REQUEST, "\"state\" is required");
	}
	snprintf(id_s, sizeof(id_s), "%lld", id);
	ret = set_cp_state(c, id_s, state, note, NULL);
	json_decref(o);
	if (ret == -EINVAL)
		return fail(mc, MHD_HTTP_BAD_REQUEST, "bad note");
	if (ret == -ENOENT)
		return fail(mc, MHD_HTTP_NOT_FOUND, "no such change point");
	if (ret)
		return fail_db(mc, ret);
	return send_query(mc, c, CP_ONE, 1, (const char *[]){ id_s }, true);
}

#define ANN_JSON "SELECT coalesce(json_agg(t ORDER BY t.gen, t.committed, t.id), '[]') FROM (" \
	"SELECT a.id, c.sha AS commit, c.committed, c.gen, a.host_class, a.bench, a.text, k.name" \
	" AS author, a.created FROM annotations a JOIN commits c ON c.id = a.commit_id" \
	" JOIN tokens k ON k.id = a.token_id"

static enum MHD_Result post_annotation(struct MHD_Connection *mc, PGconn *c, long long token,
				       struct request *r)
{
	const char *f[4] = { NULL, NULL, NULL, NULL };	/* commit, text, host_class, bench */
	static const char *const names[] = { "commit", "text", "host_class", "bench" };
	char tok[24];
	enum MHD_Result mret;
	PGresult *res;
	const char *key;
	json_t *o, *v;
	long long id;
	int ret;

	o = parse_body(mc, r, &mret);
	if (!o)
		return mret;
	json_object_foreach(o, key, v) {
		int i;

		for (i = 0; i < 4; i++)
			if (!strcmp(key, names[i]))
				break;
		if (i == 4 || !json_is_string(v) || !json_string_length(v) ||
		    json_string_length(v) > 1000) {
			mret = fail(mc, MHD_HTTP_BAD_REQUEST, "'%.64s': an annotation is \"commit\" "
				    "(a sha) and \"text\", optionally \"host_class\" and \"bench\", "
				    "each a string of 1 to 1000 characters", key);
			json_decref(o);
			return mret;
		}
		f[i] = json_string_value(v);
	}
	if (!f[0] || !f[1]) {
		json_decref(o);
		return fail(mc, MHD_HTTP_BAD_REQUEST, "\"commit\" and \"text\" are required");
	}
	snprintf(tok, sizeof(tok), "%lld", token);
	{
		const char *p[5] = { f[0], f[1], f[2], f[3], tok };

		ret = db_exec(c, &res, "INSERT INTO annotations (commit_id, text, host_class, bench,"
			      " token_id) SELECT id, $2, $3, $4, $5 FROM commits WHERE sha = $1"
			      " RETURNING id", 5, p);
	}
	if (ret == -EINVAL)
		mret = fail(mc, MHD_HTTP_BAD_REQUEST, "bad annotation text");
	else if (ret)
		mret = fail_db(mc, ret);
	else if (PQntuples(res) != 1)
		mret = fail(mc, MHD_HTTP_UNPROCESSABLE_CONTENT, "no run was submitted for commit "
			    "'%.64s'", f[0]);
	json_decref(o);
	if (ret || PQntuples(res) != 1) {
		PQclear(res);
		return mret;
	}
	id = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	return send_json(mc, MHD_HTTP_CREATED, json_pack("{s:I}", "id", (json_int_t)id));
}

static enum MHD_Result get_annotations(struct MHD_Connection *mc, PGconn *c)
{
	static const char *const allowed[] = { "host_class", "bench", NULL };
	const char *p[2] = { arg(mc, "host_class"), arg(mc, "bench") };
	const char *bad = bad_arg(mc, allowed);

	if (bad)
		return fail(mc, MHD_HTTP_BAD_REQUEST, "unknown parameter '%.64s' (takes "
			    "host_class, bench)", bad);
	return send_query(mc, c, ANN_JSON " WHERE ($1::text IS NULL OR a.host_class IS NULL"
			  " OR a.host_class = $1) AND ($2::text IS NULL OR a.bench IS NULL"
			  " OR a.bench = $2)) t", 2, p, false);
}

static enum MHD_Result get_series_list(struct MHD_Connection *mc, PGconn *c)
{
	static const char *const allowed[] = { "bench", "metric", "backend", "host_class", "params",
					       NULL };
	const char *p[5] = { arg(mc, "bench"), arg(mc, "metric"), arg(mc, "backend"),
			     arg(mc, "host_class"), arg(mc, "params") };
	const char *bad = bad_arg(mc, allowed);
	json_t *params;

	if (bad)
		return fail(mc, MHD_HTTP_BAD_REQUEST, "unknown parameter '%.64s' (takes bench, "
			    "metric, backend, host_class, params)", bad);
	/* params: a JSON object the series' params must contain. */
	if (p[4]) {
		params = json_loads(p[4], JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(params)) {
			json_decref(params);
			return fail(mc, MHD_HTTP_BAD_REQUEST, "params must be a JSON object, e.g. "
				    "{\"backing\": \"anonymous_thp\"}");
		}
		json_decref(params);
	}
	return send_query(mc, c, "SELECT coalesce(json_agg(t ORDER BY t.bench, t.metric, t.id),"
			  " '[]') FROM (SELECT s.id, s.bench, s.metric, s.backend, s.params, s.unit,"
			  " s.lower_is_better, (SELECT array_agg(DISTINCT h.host_class) FROM"
			  " results r JOIN runs u ON u.id = r.run_id JOIN hosts h ON h.id ="
			  " u.host_id WHERE r.series_id = s.id) AS host_classes FROM series s"
			  " WHERE ($1::text IS NULL OR s.bench = $1)"
			  " AND ($2::text IS NULL OR s.metric = $2)"
			  " AND ($3::text IS NULL OR s.backend = $3)"
			  " AND ($5::jsonb IS NULL OR s.params @> $5::jsonb)) t"
			  " WHERE ($4::text IS NULL OR $4 = ANY (t.host_classes))", 5, p, false);
}

static enum MHD_Result get_series(struct MHD_Connection *mc, PGconn *c, long long id)
{
	static const char *const allowed[] = { "host_class", NULL };
	const char *bad = bad_arg(mc, allowed);
	char id_s[24];
	const char *p[2] = { id_s, arg(mc, "host_class") };

	if (bad)
		return fail(mc, MHD_HTTP_BAD_REQUEST, "unknown parameter '%.64s' (takes "
			    "host_class)", bad);
	snprintf(id_s, sizeof(id_s), "%lld", id);
	return send_query(mc, c, "SELECT json_build_object('series', row_to_json(s),"
			  " 'points', (SELECT coalesce(json_agg(t ORDER BY t.gen, t.committed, t.run), '[]')"
			  " FROM (SELECT h.host_class, h.name AS host, m.label AS machine, u.branch,"
			  " c.sha AS commit, c.committed, c.gen,"
			  " u.id AS run, u.dirty, r.median, r.samples, r.floor_metric, r.floor_median"
			  " FROM results r JOIN runs u ON u.id = r.run_id"
			  " JOIN hosts h ON h.id = u.host_id JOIN machine_labels m ON m.id = h.machine"
			  " JOIN commits c ON c.id = u.commit_id"
			  " WHERE r.series_id = s.id AND u.retracted IS NULL"
			  " AND ($2::text IS NULL OR h.host_class = $2)) t),"
			  " 'change_points', (SELECT coalesce(json_agg(json_build_object('id', p.id,"
			  " 'host_class', p.host_class, 'machine', m.label, 'branch', p.branch,"
			  " 'commit', c.sha, 'old_median', p.old_median,"
			  " 'new_median', p.new_median, 'rel_change', p.rel_change, 'noise', p.noise,"
			  " 'effect', p.effect, 'pvalue', p.pvalue, 'mwu_pvalue', p.mwu_pvalue,"
			  " 'kind', p.kind, 'state', p.state, 'note', p.note, 'weakened', p.weakened)"
			  " ORDER BY c.gen, c.committed), '[]') FROM change_points p"
			  " JOIN machine_labels m ON m.id = p.machine_id"
			  " JOIN commits c ON c.id = p.commit_id WHERE p.series_id = s.id"
			  " AND ($2::text IS NULL OR p.host_class = $2)))"
			  " FROM series s WHERE s.id = $1", 2, p, true);
}

static enum MHD_Result get_run(struct MHD_Connection *mc, PGconn *c, long long id)
{
	char id_s[24];
	const char *p[1] = { id_s };

	snprintf(id_s, sizeof(id_s), "%lld", id);
	return send_query(mc, c, "SELECT json_build_object('id', u.id, 'commit', c.sha,"
			  " 'host', h.name, 'machine', h.machine, 'branch', u.branch,"
			  " 'host_class', h.host_class, 'submitted', u.submitted,"
			  " 'submitter', k.name, 'dirty', u.dirty, 'retracted', CASE WHEN"
			  " u.retracted IS NULL THEN NULL ELSE json_build_object('at', u.retracted,"
			  " 'by', a.name, 'reason', u.retract_reason) END, 'document', u.document)"
			  " FROM runs u JOIN commits c ON c.id = u.commit_id"
			  " JOIN hosts h ON h.id = u.host_id JOIN tokens k ON k.id = u.token_id"
			  " LEFT JOIN tokens a ON a.id = u.retracted_by WHERE u.id = $1", 1, p, true);
}

/*
 * POST /api/v1/runs/ID/retract {"reason": "..."} with an admin token: the
 * run stays stored, marked, and its points leave the series and detection.
 */
static enum MHD_Result post_retract(struct MHD_Connection *mc, PGconn *c, long long id,
				    long long token, struct request *r)
{
	struct retract_result rr;
	enum MHD_Result mret;
	const char *key, *reason;
	json_t *body, *v;
	int ret;

	body = parse_body(mc, r, &mret);
	if (!body)
		return mret;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "reason")) {
			mret = fail(mc, MHD_HTTP_BAD_REQUEST, "unknown field '%.64s' (takes reason)",
				    key);
			json_decref(body);
			return mret;
		}
	}
	v = json_object_get(body, "reason");
	reason = json_string_value(v);
	if (!reason || !*reason || strlen(reason) > 1000) {
		json_decref(body);
		return fail(mc, MHD_HTTP_BAD_REQUEST,
			    "\"reason\" must be a string of 1 to 1000 bytes: why the run is retracted");
	}
	ret = retract_run(c, id, token, reason, &rr);
	json_decref(body);
	if (ret == -EACCES)
		return fail(mc, MHD_HTTP_FORBIDDEN, "only an admin token may retract a run");
	if (ret == -ENOENT)
		return fail(mc, MHD_HTTP_NOT_FOUND, "no run %lld", id);
	if (ret == -EALREADY)
		return fail(mc, MHD_HTTP_CONFLICT, "run %lld is already retracted", id);
	if (ret)
		return fail_db(mc, ret);
	return send_json(mc, MHD_HTTP_OK, json_pack("{s:I, s:s, s:i, s:i}", "id", (json_int_t)id,
						    "retracted", rr.when, "series", (int)rr.series,
						    "change_points", (int)rr.change_points));
}


/* A short HTML page for a browser whose form could not be taken. */
static enum MHD_Result fail_page(struct MHD_Connection *mc, unsigned int status, const char *msg,
				 const char *back)
{
	struct buf b = { 0 };

	buf_printf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		   "<title>%u</title></head><body><h1>Not done</h1><p>", status);
	buf_html(&b, msg);
	buf_printf(&b, "</p><p><a href=\"");
	buf_html(&b, back);
	buf_printf(&b, "\">Back</a></p></body></html>\n");
	return respond(mc, status, "text/html; charset=utf-8", &b);
}

/* %XX and + of a form field, in place; false for a bad escape or a NUL. */
static bool form_decode(char *s)
{
	char *d = s;

	for (; *s; s++, d++) {
		if (*s == '+') {
			*d = ' ';
		} else if (*s == '%') {
			unsigned int v;

			if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]) ||
			    sscanf(s + 1, "%2x", &v) != 1 || !v)
				return false;
			*d = v;
			s += 2;
		} else {
			*d = *s;
		}
	}
	*d = 0;
	return true;
}

/*
 * Splits a form body (application/x-www-form-urlencoded, decoded in place)
 * into field[i] for names[i]; false on an unknown, repeated or undecodable
 * field.
 */
static bool parse_form(char *body, const char *const *names, int n, char **field)
{
	char *pair, *save;

	for (pair = strtok_r(body, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(pair, '=');
		int i;

		if (!eq)
			return false;
		*eq = 0;
		for (i = 0; i < n && strcmp(pair, names[i]); i++)
			;
		if (i == n || field[i] || !form_decode(eq + 1))
			return false;
		field[i] = eq + 1;
	}
	return true;
}

static enum MHD_Result see_other(struct MHD_Connection *mc, const char *where)
{
	struct MHD_Response *resp;
	enum MHD_Result mret;

	resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, where);
	mret = MHD_queue_response(mc, MHD_HTTP_SEE_OTHER, resp);
	MHD_destroy_response(resp);
	return mret;
}

/*
 * The forms of the pages: POST /change-points/ID/state (token, state,
 * note) and /alerts/ID/state (token, state, bug_url, note), form-encoded;
 * on success back to the page (303).  An empty note or bug link leaves it as
 * it was.  The token is typed into the form, never kept in a cookie, so
 * another site cannot make a browser send one.
 */
static enum MHD_Result post_form(struct MHD_Connection *mc, PGconn *c, long long id,
				 struct request *r, bool alert)
{
	const char *type = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_CONTENT_TYPE);
	char *field[4] = { NULL, NULL, NULL, NULL };	/* token, state, note, bug_url */
	static const char *const names[] = { "token", "state", "note", "bug_url" };
	char id_s[24], back[64] = "/";
	enum MHD_Result mret;
	long long tok, series = 0;
	char *body;
	int ret;

	if (!type || strncasecmp(type, "application/x-www-form-urlencoded", 33))
		return fail_page(mc, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
				 "expected a form (application/x-www-form-urlencoded)", back);
	body = strndup(r->body.p ? r->body.p : "", r->body.len);
	if (!body)
		return fail_page(mc, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", back);
	snprintf(id_s, sizeof(id_s), "%lld", id);
	if (!parse_form(body, names, alert ? 4 : 3, field)) {
		mret = fail_page(mc, MHD_HTTP_BAD_REQUEST, alert ?
				 "the form takes token, state, bug_url and note, each once" :
				 "the form takes token, state and note, each once", back);
	} else if (!field[1] || !is_state(field[1])) {
		mret = fail_page(mc, MHD_HTTP_BAD_REQUEST, "state must be new, acknowledged, "
				 "invalid or fixed", back);
	} else if (field[2] && strlen(field[2]) > 1000) {
		mret = fail_page(mc, MHD_HTTP_BAD_REQUEST, "a note is at most 1000 characters",
				 back);
	} else if (field[3] && !bug_url_ok(field[3])) {
		mret = fail_page(mc, MHD_HTTP_BAD_REQUEST, "a bug link is an http:// or https:// "
				 "URL without spaces, of at most 1000 characters", back);
	} else if ((tok = token_id(c, field[0])) <= 0) {
		mret = tok < 0 ? fail_db(mc, tok) :
			fail_page(mc, MHD_HTTP_UNAUTHORIZED, "that token may not change states",
				  back);
	} else {
		const char *note = field[2] && *field[2] ? field[2] : NULL;

		if (alert)
			ret = set_alert(c, id_s, field[1], field[3] && *field[3] ? field[3] : NULL,
					note);
		else
			ret = set_cp_state(c, id_s, field[1], note, &series);
		if (ret == -ENOENT)
			mret = fail_page(mc, MHD_HTTP_NOT_FOUND, alert ? "no such alert" :
					 "no such change point", back);
		else if (ret == -EINVAL)
			mret = fail_page(mc, MHD_HTTP_BAD_REQUEST, "bad note", back);
		else if (ret)
			mret = fail_db(mc, ret);
		else if (alert)
			mret = see_other(mc, (snprintf(back, sizeof(back), "/alerts/%s", id_s), back));
		else
			mret = see_other(mc, (snprintf(back, sizeof(back), "/series/%lld", series),
					      back));
	}
	free(body);
	return mret;
}

/* A series page's or plot's from, to and last: the commits to draw. */
static int range_args(struct MHD_Connection *mc, PGconn *c, long long id,
		      struct plot_range *range, char *why, size_t whylen)
{
	static const char *const allowed[] = { "from", "to", "last", NULL };
	const char *bad = bad_arg(mc, allowed);

	if (bad) {
		snprintf(why, whylen, "unknown parameter '%.64s' (takes from and to, or last)", bad);
		return -EINVAL;
	}
	return series_range(c, id, arg(mc, "from"), arg(mc, "to"), arg(mc, "last"), range, why,
			    whylen);
}

/* Routes that need the database; c is this request's connection. */
static enum MHD_Result route_db(struct MHD_Connection *mc, PGconn *c, const char *url,
				bool post, struct request *r)
{
	long long id = -1, token = 0;
	struct buf b = { 0 };
	const char *rest;
	int ret;

	if (post && (!strncmp(url, "/change-points/", 15) || !strncmp(url, "/alerts/", 8))) {
		bool alert = url[1] == 'a';
		const char *num0 = url + (alert ? 8 : 15), *slash = strchr(num0, '/');
		char num[24];

		if (!slash || strcmp(slash, "/state") || slash - num0 >= (int)sizeof(num))
			return fail(mc, MHD_HTTP_NOT_FOUND, "nothing at %.200s", url);
		snprintf(num, sizeof(num), "%.*s", (int)(slash - num0), num0);
		id = parse_id(num);
		if (id < 0)
			return fail(mc, MHD_HTTP_NOT_FOUND, "nothing at %.200s", url);
		return post_form(mc, c, id, r, alert);
	}
	if (post) {
		token = authenticate(mc, c);
		if (token < 0)
			return fail_db(mc, token);
		if (!token)
			return fail(mc, MHD_HTTP_UNAUTHORIZED,
				    "a valid 'Authorization: Bearer <token>' is required");
	}

	if (!strcmp(url, "/api/v1/runs"))
		return post ? post_run(mc, c, token, r) :
			fail(mc, MHD_HTTP_METHOD_NOT_ALLOWED, "POST a results document here");
	if (post && !strncmp(url, "/api/v1/runs/", 13)) {
		char num[24];

		rest = strchr(url + 13, '/');
		if (!rest || strcmp(rest, "/retract") || rest - (url + 13) >= (int)sizeof(num))
			return fail(mc, MHD_HTTP_NOT_FOUND, "nothing at %.200s", url);
		snprintf(num, sizeof(num), "%.*s", (int)(rest - (url + 13)), url + 13);
		id = parse_id(num);
		if (id < 0)
			return fail(mc, MHD_HTTP_NOT_FOUND, "nothing at %.200s", url);
		return post_retract(mc, c, id, token, r);
	}
	if (!strncmp(url, "/api/v1/runs/", 13) && !post && (id = parse_id(url + 13)) > 0)
		return get_run(mc, c, id);
	if (!strcmp(url, "/api/v1/retractions") && !post) {
		static const char *const none[] = { NULL };
		const char *bad = bad_arg(mc, none);

		if (bad)
			return fail(mc, MHD_HTTP_BAD_REQUEST, "unknown parameter '%.64s'", bad);
		return send_query(mc, c, "SELECT coalesce(json_agg(json_build_object('run', u.id,"
				  " 'commit', c.sha, 'host', h.name, 'at', u.retracted, 'by', a.name,"
				  " 'reason', u.retract_reason) ORDER BY u.retracted, u.id), '[]')"
				  " FROM runs u JOIN commits c ON c.id = u.commit_id"
				  " JOIN hosts h ON h.id = u.host_id JOIN tokens a ON a.id ="
				  " u.retracted_by WHERE u.retracted IS NOT NULL", 0, NULL, false);
	}
	if (!strcmp(url, "/api/v1/annotations"))
		return post ? post_annotation(mc, c, token, r) : get_annotations(mc, c);
	if (!strcmp(url, "/api/v1/change-points") && !post)
		return get_change_points(mc, c);
	if (!strncmp(url, "/api/v1/change-points/", 22) && (id = parse_id(url + 22)) > 0)
		return post ? post_change_point(mc, c, id, r) :
			send_query(mc, c, CP_ONE, 1, (const char *[]){ url + 22 }, true);
	if (!strcmp(url, "/api/v1/alerts") && !post)
		return get_alerts(mc, c);
	if (!strncmp(url, "/api/v1/alerts/", 15) && (id = parse_id(url + 15)) > 0)
		return post ? post_alert(mc, c, id, r) :
			send_query(mc, c, ALERT_ONE, 3, (const char *[]){ url + 15,
				   conf->commit_url, conf->range_url }, true);
	if (post)
		return fail(mc, MHD_HTTP_METHOD_NOT_ALLOWED, "%.100s takes GET", url);
	if (!strcmp(url, "/api/v1/hosts") || !strcmp(url, "/api/v1/benchmarks")) {
		static const char *const none[] = { NULL };
		const char *bad = bad_arg(mc, none);

		if (bad)
			return fail(mc, MHD_HTTP_BAD_REQUEST, "unknown parameter '%.64s'", bad);
	}
	if (!strcmp(url, "/api/v1/hosts"))
		return send_query(mc, c, "SELECT coalesce(json_agg(h ORDER BY h.id), '[]')"
				   " FROM hosts h", 0, NULL, false);
	if (!strcmp(url, "/api/v1/machines"))
		return send_query(mc, c, "SELECT coalesce(json_agg(t ORDER BY t.id), '[]') FROM"
				   " (SELECT m.id, l.label, m.name, m.machine_id, m.host_class,"
				   " m.first_seen FROM machines m JOIN machine_labels l"
				   " ON l.id = m.id) t", 0, NULL, false);
	if (!strcmp(url, "/api/v1/benchmarks"))
		return send_query(mc, c, "SELECT coalesce(json_agg(t ORDER BY t.bench, t.metric),"
				   " '[]') FROM (SELECT bench, metric, unit, lower_is_better,"
				   " count(*) AS series FROM series GROUP BY bench, metric, unit,"
				   " lower_is_better) t", 0, NULL, false);
	if (!strcmp(url, "/api/v1/series"))
		return get_series_list(mc, c);
	if (!strncmp(url, "/api/v1/series/", 15) && (id = parse_id(url + 15)) > 0)
		return get_series(mc, c, id);
	if (!strcmp(url, "/healthz")) {
		buf_printf(&b, "ok\n");
		return respond(mc, MHD_HTTP_OK, "text/plain", &b);
	}

	if (!strcmp(url, "/compare") || !strcmp(url, "/api/v1/compare")) {
		static const char *const allowed[] = { "base", "head", "host_class", NULL };
		const char *bad = bad_arg(mc, allowed);
		bool html = url[1] == 'c';
		char why[256] = "";

		if (bad)
			return fail(mc, MHD_HTTP_BAD_REQUEST, "unknown parameter '%.64s' (takes base,"
				    " head and host_class)", bad);
		ret = compare_commits(c, arg(mc, "base"), arg(mc, "head"), arg(mc, "host_class"),
				      html, &b, why, sizeof(why));
		if (ret == -EINVAL || ret == -ENOENT) {
			buf_free(&b);
			return fail(mc, ret == -EINVAL ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_NOT_FOUND,
				    "%s", why);
		}
		if (!ret && !html)
			return respond(mc, MHD_HTTP_OK, "application/json", &b);
	} else if (!strcmp(url, "/")) {
		ret = page_dashboard(c, &b);
	} else if (!strncmp(url, "/alerts/", 8) && (id = parse_id(url + 8)) > 0) {
		ret = page_alert(c, id, &b);
		if (ret == -ENOENT) {
			buf_free(&b);
			return fail(mc, MHD_HTTP_NOT_FOUND, "no such alert");
		}
	} else if (!strncmp(url, "/series/", 8) && (id = parse_id(url + 8)) > 0) {
		struct plot_range range;
		char why[256] = "";

		ret = range_args(mc, c, id, &range, why, sizeof(why));
		if (!ret)
			ret = page_series(c, id, &range, &b);
		if (ret == -EINVAL || ret == -ERANGE || (ret == -ENOENT && *why)) {
			buf_free(&b);
			return fail(mc, ret == -EINVAL ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_NOT_FOUND,
				    "%s", *why ? why : "no point of this series in that range");
		}
	} else if ((!strncmp(url, "/plots/series/", 14) && (rest = url + 14)) ||
		   (!strncmp(url, "/plots/compare/", 15) && (rest = url + 15))) {
		struct plot_range range;
		char num[24], why[256] = "";
		size_t len = strlen(rest);

		if (len < 5 || len > 20 || strcmp(rest + len - 4, ".svg"))
			return fail(mc, MHD_HTTP_NOT_FOUND, "no such plot");
		snprintf(num, sizeof(num), "%.*s", (int)(len - 4), rest);
		id = parse_id(num);
		if (id < 0)
			return fail(mc, MHD_HTTP_NOT_FOUND, "no such plot");
		ret = range_args(mc, c, id, &range, why, sizeof(why));
		if (!ret)
			ret = plot_series(c, id, url[7] == 'c', &range, &b);
		if (ret == -EINVAL || ret == -ERANGE || (ret == -ENOENT && *why)) {
			buf_free(&b);
			return fail(mc, ret == -EINVAL ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_NOT_FOUND,
				    "%s", *why ? why : "no point of this series in that range");
		}
		if (!ret)
			return respond(mc, MHD_HTTP_OK, "image/svg+xml", &b);
	} else {
		return fail(mc, MHD_HTTP_NOT_FOUND, "nothing at %.200s", url);
	}
	if (ret == -ENOENT) {
		buf_free(&b);
		return fail(mc, MHD_HTTP_NOT_FOUND, "no such series");
	}
	if (ret) {
		buf_free(&b);
		return fail_db(mc, ret);
	}
	return respond(mc, MHD_HTTP_OK, "text/html; charset=utf-8", &b);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *mc, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	struct request *r = *con_cls;
	enum MHD_Result ret;
	bool post;
	PGconn *c;

	if (!r) {
		const char *len = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
							      MHD_HTTP_HEADER_CONTENT_LENGTH);

		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		*con_cls = r;
		__atomic_add_fetch(&in_flight, 1, __ATOMIC_RELAXED);
		if (len && strtoull(len, NULL, 10) > conf->max_body)
			r->too_large = true;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!r->too_large && r->body.len + *upload_size > conf->max_body) {
			r->too_large = true;
			buf_free(&r->body);
		}
		if (!r->too_large)
			buf_add(&r->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->too_large)
		return fail(mc, MHD_HTTP_CONTENT_TOO_LARGE, "request body over %zu bytes",
			    conf->max_body);
	if (r->body.oom)
		return fail(mc, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");

	post = !strcmp(method, MHD_HTTP_METHOD_POST);
	if (!post && strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return fail(mc, MHD_HTTP_METHOD_NOT_ALLOWED, "%.20s is not served here", method);
	if (strncmp(url, "/api/v1/", 8) && strcmp(url, "/") && strncmp(url, "/series/", 8) &&
	    strncmp(url, "/plots/", 7) && strcmp(url, "/healthz") && strcmp(url, "/compare") &&
	    strncmp(url, "/change-points/", 15) && strncmp(url, "/alerts/", 8))
		return fail(mc, MHD_HTTP_NOT_FOUND, "nothing at %.200s", url);
	if (post && strncmp(url, "/api/v1/", 8) && strncmp(url, "/change-points/", 15) &&
	    !(!strncmp(url, "/alerts/", 8) && strchr(url + 8, '/')))
		return fail(mc, MHD_HTTP_METHOD_NOT_ALLOWED, "%.100s takes GET", url);
	if (!post && (!strncmp(url, "/change-points/", 15) ||
		      (!strncmp(url, "/alerts/", 8) && strchr(url + 8, '/'))))
		return fail(mc, MHD_HTTP_METHOD_NOT_ALLOWED, "%.100s takes a form's POST", url);

	c = db_get();
	if (!c)
		return fail(mc, MHD_HTTP_SERVICE_UNAVAILABLE, "database unavailable, retry later");
	ret = route_db(mc, c, url, post, r);
	db_rollback(c);
	db_put(c);
	return ret;
}

static void done(void *cls, struct MHD_Connection *mc, void **con_cls,
		 enum MHD_RequestTerminationCode toe)
{
	struct request *r = *con_cls;

	if (r) {
		buf_free(&r->body);
		free(r);
		*con_cls = NULL;
		__atomic_sub_fetch(&in_flight, 1, __ATOMIC_RELEASE);
	}
}

/*
 * SIGTERM: take no new connection, let every request begun be answered (its
 * response sent, or its client gone) for stop_timeout seconds at most, then
 * close what is left.  Idle keep-alive connections are not waited for.
 */
static void stop_serving(struct MHD_Daemon *d)
{
	struct timespec t = { 0, 20 * 1000 * 1000 };
	unsigned long n, ticks = conf->stop_timeout * 50ul;
	MHD_socket fd;

	/*
	 * MHD polls the socket no more, but the kernel would still complete
	 * connections to it; shut down, it refuses them.  It is closed only
	 * after MHD_stop_daemon(), which may still look at it.
	 */
	fd = MHD_quiesce_daemon(d);
	if (fd == MHD_INVALID_SOCKET)
		log_warn("http: cannot stop listening before the end");
	else
		shutdown(fd, SHUT_RDWR);
	while ((n = __atomic_load_n(&in_flight, __ATOMIC_ACQUIRE)) && ticks--)
		nanosleep(&t, NULL);
	if (n)
		log_warn("%lu request(s) still in flight after %u s: closing them", n,
			 conf->stop_timeout);
	MHD_stop_daemon(d);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
}

/*
 * Each connection is a descriptor: make room for max_connections of them and
 * the pool's database connections, within the hard limit.
 */
static void raise_fd_limit(void)
{
	rlim_t want = conf->max_connections + 4ul * conf->threads + 64;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur < want)
		log_warn("open files limited to %llu: fewer than max_connections = %u may be served",
			 (unsigned long long)rl.rlim_cur, conf->max_connections);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	if (n && msg[n - 1] == '\n')
		msg[n - 1] = 0;
	log_warn("http: %s", msg);
}

static int start_db(bool check_only)
{
	PGconn *c;
	int ret;

	c = db_get();
	if (!c) {
		log_err("cannot reach the database (dsn '%s')", conf->dsn);
		return -ENOTCONN;
	}
	ret = db_migrate(c, conf->sql_dir);
	if (!ret)
		ret = db_sync_tokens(c, conf->tokens_file);
	if (!ret && !check_only)
		ret = detect_all(c);
	db_put(c);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct sockaddr_storage addr = { 0 };
	struct MHD_Daemon *d;
	struct config cfg;
	bool check = false;
	char err[512];
	sigset_t sigs;
	int opt, sig, ret = 1;

	config_init(&cfg);
	conf = &cfg;
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			if (config_load_file(&cfg, optarg))
				goto out;
			break;
		case 'C':
			check = true;
			break;
		case 'h':
			config_help();
			ret = 0;
			goto out;
		default:
			fprintf(stderr, "usage: kmmu-regressd [-c FILE] [--check-config] [-h]\n");
			ret = 2;
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kmmu-regressd: unexpected argument '%s' (see --help)\n",
			argv[optind]);
		ret = 2;
		goto out;
	}
	if (config_load_env(&cfg) || config_check(&cfg))
		goto out;

	if (inet_pton(AF_INET, cfg.listen, &((struct sockaddr_in *)&addr)->sin_addr) == 1) {
		((struct sockaddr_in *)&addr)->sin_family = AF_INET;
		((struct sockaddr_in *)&addr)->sin_port = htons(cfg.port);
	} else if (inet_pton(AF_INET6, cfg.listen,
			     &((struct sockaddr_in6 *)&addr)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&addr)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&addr)->sin6_port = htons(cfg.port);
	} else {
		log_err("listen = '%s': not an IPv4 or IPv6 address", cfg.listen);
		goto out;
	}

	results_schema = js_schema_load_file(cfg.schema_file, err, sizeof(err));
	if (!results_schema) {
		log_err("schema %s: %s", cfg.schema_file, err);
		goto out;
	}
	if (mkdir(cfg.cache_dir, 0755) && errno != EEXIST) {
		log_err("cache_dir %s: %s", cfg.cache_dir, strerror(errno));
		goto out;
	}
	/* One more connection for the notifier, when there is one. */
	if (db_pool_init(cfg.dsn, cfg.threads + !!*cfg.webhook_url) || start_db(check))
		goto out_db;
	if (check) {
		log_info("configuration, schema, migrations and tokens are good");
		ret = 0;
		goto out_db;
	}

	/* Only this thread takes the signals: the others inherit the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	raise_fd_limit();
	/*
	 * epoll (MHD_USE_AUTO), so that connections are not bounded by select()'s
	 * FD_SETSIZE; an idle connection costs a descriptor, never a thread.  One
	 * address may hold max_client_connections, so a flood from one client
	 * cannot fill max_connections; MHD_USE_ITC lets SIGTERM stop listening
	 * while the pool still answers.
	 */
	d = MHD_start_daemon(MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
			     MHD_USE_ERROR_LOG | (addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
			     cfg.port, NULL, NULL, handle, NULL,
			     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
			     MHD_OPTION_THREAD_POOL_SIZE, cfg.threads,
			     MHD_OPTION_NOTIFY_COMPLETED, done, NULL,
			     MHD_OPTION_CONNECTION_TIMEOUT, cfg.idle_timeout,
			     MHD_OPTION_CONNECTION_LIMIT, cfg.max_connections,
			     MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg.max_client_connections,
			     MHD_OPTION_END);
	if (!d) {
		log_err("cannot listen on %s port %u: %s", cfg.listen, cfg.port, strerror(errno));
		goto out_db;
	}
	if (notify_start()) {
		stop_serving(d);
		goto out_db;
	}
	log_info("serving on http://%s%s%s:%u/", addr.ss_family == AF_INET6 ? "[" : "",
		 cfg.listen, addr.ss_family == AF_INET6 ? "]" : "", cfg.port);
	if (sigwait(&sigs, &sig) == 0)
		log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	stop_serving(d);
	notify_stop();
	ret = 0;
	log_info("stopped");
out_db:
	db_pool_destroy();
	js_schema_free(results_schema);
out:
	config_free(&cfg);
	return ret;
}
