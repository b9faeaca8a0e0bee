/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kmmu-regressd: stores bench results in PostgreSQL, finds change points
 * per series and serves the dashboard.  What the pieces share.
 */
#ifndef KMMU_REGRESSD_H
#define KMMU_REGRESSD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "detect.h"

#define REGRESSD_SCHEMA		"kmmu-bench-results"
#define REGRESSD_SCHEMA_VERSION	1

struct config {
	char		*listen;	/* IPv4 or IPv6 address */
	unsigned int	port;
	char		*dsn;
	char		*tokens_file;
	char		*schema_file;	/* bench/results.schema.json */
	char		*sql_dir;	/* migrations */
	char		*plots_dir;	/* gnuplot templates */
	char		*cache_dir;	/* rendered SVG */
	char		*commit_url;	/* printf format with one %s: the sha */
	char		*range_url;	/* two %s: from (excluded), to */
	size_t		max_body;
	unsigned int	threads;	/* HTTP threads, one DB connection each */
	unsigned int	max_results;	/* figures in one document */
	unsigned int	max_connections;	/* open at once, all clients */
	unsigned int	max_client_connections;	/* open at once from one address */
	unsigned int	idle_timeout;	/* seconds a connection may sit idle */
	unsigned int	stop_timeout;	/* seconds SIGTERM waits for requests in flight */
	char		*webhook_url;	/* http://host[:port]/path, or "" for none */
	unsigned int	webhook_max_delay;	/* seconds between retries, at most */
	unsigned int	webhook_settle;		/* seconds before a new alert is sent */
	struct detect_config detect;
};

void config_init(struct config *cfg);
void config_free(struct config *cfg);
/* Parse "key = value" lines of path, then KMMU_REGRESSD_* variables. */
int config_load_file(struct config *cfg, const char *path);
int config_load_env(struct config *cfg);
int config_set(struct config *cfg, const char *key, const char *value,
	       const char *where);
int config_check(const struct config *cfg);
void config_help(void);

extern const struct config *conf;

/* Notifications of new change points (notify.c). */
struct webhook {
	char	host[256];
	char	port[8];
	char	path[1024];
};
int webhook_parse(const char *url, struct webhook *w);
int notify_start(void);
void notify_kick(void);
void notify_stop(void);

__attribute__((format(printf, 2, 3)))
void log_msg(const char *level, const char *fmt, ...);
#define log_info(...)	log_msg("info", __VA_ARGS__)
#define log_warn(...)	log_msg("warn", __VA_ARGS__)
#define log_err(...)	log_msg("error", __VA_ARGS__)

/*
 * Database access.  Each HTTP request takes one connection of the pool for
 * its whole life, so no two threads ever share a connection.  Errors:
 * -ENOTCONN when the server is unreachable (answered with 503), -EIO for
 * any other failure (500); the SQLSTATE is logged.  -EEXIST and -EINVAL
 * come back for unique and check violations, which are the client's fault.
 */
int db_pool_init(const char *dsn, unsigned int size);
void db_pool_destroy(void);
PGconn *db_get(void);
void db_put(PGconn *c);
int db_exec(PGconn *c, PGresult **res, const char *sql, int n,
	    const char *const *params);
int db_cmd(PGconn *c, const char *sql, int n, const char *const *params);
int db_begin(PGconn *c);
int db_commit(PGconn *c);
void db_rollback(PGconn *c);
int db_migrate(PGconn *c, const char *sql_dir);
int db_sync_tokens(PGconn *c, const char *tokens_file);

/* Submissions and detection (store.c). */
struct submit_result {
	long long	run_id;
	bool		duplicate;
	unsigned int	results;
	unsigned int	series;
	unsigned int	change_points;
};
int store_run(PGconn *c, long long token_id, const json_t *doc,
	      struct submit_result *out, char *err, size_t errlen);
int detect_series(PGconn *c, long long series_id, const char *machine_id, const char *branch,
		  const char *pivot, bool drop_unfound, unsigned int *found);

struct retract_result {
	char		when[40];	/* the retraction's time, as PostgreSQL prints it */
	unsigned int	series;		/* series detection ran on again */
	unsigned int	change_points;	/* found on them after the retraction */
};

/*
 * Retract run_id on behalf of an admin token, with a reason: -ENOENT no such
 * run, -EACCES not an admin token, -EALREADY retracted before.
 */
int retract_run(PGconn *c, long long run_id, long long token_id, const char *reason,
		struct retract_result *out);
int detect_all(PGconn *c);

/* Numbers. */
double median_of(double *v, size_t n);
int parse_float_array(const char *pg, double **out, size_t *n);

/* HTML and plots (pages.c). */
struct buf {
	char	*p;
	size_t	len, cap;
	bool	oom;
};
void buf_add(struct buf *b, const void *p, size_t n);
__attribute__((format(printf, 2, 3)))
void buf_printf(struct buf *b, const char *fmt, ...);
void buf_html(struct buf *b, const char *s);	/* escaped for HTML */
void buf_free(struct buf *b);

int page_dashboard(PGconn *c, struct buf *out);
/* Commits drawn, by place (commits.gen): 0 for no bound. */
struct plot_range {
	long long	from, to;
};
int series_range(PGconn *c, long long id, const char *from, const char *to, const char *last,
		 struct plot_range *r, char *why, size_t whylen);
/* -ERANGE: no point of the series in the range. */
int page_series(PGconn *c, long long id, const struct plot_range *range, struct buf *out);
/* -ENOENT: no such alert, or one without change points. */
int page_alert(PGconn *c, long long id, struct buf *out);
int plot_series(PGconn *c, long long id, bool compare, const struct plot_range *range,
		struct buf *svg);
/*
 * Two commits (sha prefixes) side by side, as a page or as JSON: -EINVAL or
 * -ENOENT with why, when an argument is bad or names no commit.
 */
int compare_commits(PGconn *c, const char *base, const char *head, const char *host_class,
		    bool html, struct buf *out, char *why, size_t whylen);

/* Parse a decimal id from a URL; -1 when it is not one. */
long long parse_id(const char *s);

#endif
