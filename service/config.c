// SPDX-License-Identifier: GPL-2.0
/*
 * Configuration: built-in defaults, then a file of "key = value" lines,
 * then KMMU_REGRESSD_<KEY> environment variables.  Every key is checked:
 * an unknown key or a bad value is an error that names the key and where
 * it came from, and the daemon does not start.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "regressd.h"

/* PROB: a number in (min, max]; REAL: in [min, max]. */
enum kind { STR, UINT, SIZE, PROB, REAL };

struct key {
	const char	*name;
	enum kind	kind;
	size_t		off;
	double		min, max;
	const char	*help;
};

#define K(n, k, field, lo, hi, h) { n, k, offsetof(struct config, field), lo, hi, h }

static const struct key keys[] = {
	K("listen", STR, listen, 0, 0, "address to listen on (127.0.0.1)"),
	K("port", UINT, port, 1, 65535, "TCP port (8080)"),
	K("dsn", STR, dsn, 0, 0, "libpq connection string (\"\": libpq's PG* variables)"),
	K("tokens_file", STR, tokens_file, 0, 0,
	  "file of \"name token\" lines: who may submit (required)"),
	K("schema_file", STR, schema_file, 0, 0,
	  "JSON Schema of results documents (bench/results.schema.json)"),
	K("sql_dir", STR, sql_dir, 0, 0, "directory of NNN_name.sql migrations (sql)"),
	K("plots_dir", STR, plots_dir, 0, 0, "directory of gnuplot templates (plots)"),
	K("cache_dir", STR, cache_dir, 0, 0, "where rendered plots are kept (build/plot-cache)"),
	K("commit_url", STR, commit_url, 0, 0,
	  "link to a commit, %s is its sha (\"\": no link)"),
	K("range_url", STR, range_url, 0, 0,
	  "link to the commits of a range, the first %s its start (excluded), the second"
	  " its end (\"\": none)"),
	K("max_body", SIZE, max_body, 1024, 1 << 30, "largest request body in bytes (8388608)"),
	K("threads", UINT, threads, 1, 64, "HTTP threads, one database connection each (4)"),
	K("max_results", UINT, max_results, 1, 1000000,
	  "most figures (results and floors) in one document (2000)"),
	K("max_connections", UINT, max_connections, 8, 65536,
	  "connections open at once, from all clients (1024)"),
	K("max_client_connections", UINT, max_client_connections, 1, 65536,
	  "connections open at once from one address (32)"),
	K("idle_timeout", UINT, idle_timeout, 1, 3600,
	  "seconds a connection may send or read nothing before it is closed (30)"),
	K("webhook_url", STR, webhook_url, 0, 0,
	  "http://host[:port]/path POSTed a JSON summary of each new alert (\"\": none)"),
	K("webhook_settle", UINT, webhook_settle, 0, 3600,
	  "seconds a new alert waits for the rest of its series before it is sent (30)"),
	K("webhook_max_delay", UINT, webhook_max_delay, 1, 86400,
	  "longest wait in seconds between retries of a notification (300)"),
	K("stop_timeout", UINT, stop_timeout, 0, 3600,
	  "seconds SIGTERM waits for the requests in flight to be answered (30)"),
	K("detect_max_pvalue", PROB, detect.max_pvalue, 0, 1,
	  "Welch t-test p-value a change point must be under (0.001)"),
	K("detect_noise_factor", REAL, detect.noise_factor, 0, 1000,
	  "smallest change reported, in noises of the series' per-commit medians; 0: off (3)"),
	K("detect_noise_points", UINT, detect.noise_points, 3, 100000,
	  "fewest commits whose noise is trusted; under it detect_min_magnitude applies (12)"),
	K("detect_min_magnitude", REAL, detect.min_magnitude, 0, 10,
	  "smallest relative change reported where the noise is not known (0.02)"),
	K("detect_mwu_alpha", PROB, detect.mwu_alpha, 0, 1,
	  "Mann-Whitney U p-value on raw samples that confirms it (0.001)"),
	K("detect_window", UINT, detect.window, 4, 100000,
	  "commits in a window of the split, and on each side of the confirmation (30)"),
	K("detect_min_size", UINT, detect.min_size, 2, 1000,
	  "fewest commits on each side of a change point (3)"),
};

const struct config *conf;

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p) {
		log_err("out of memory");
		exit(1);
	}
	return p;
}

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen = xstrdup("127.0.0.1");
	cfg->port = 8080;
	cfg->dsn = xstrdup("");
	cfg->tokens_file = xstrdup("");
	cfg->schema_file = xstrdup("bench/results.schema.json");
	cfg->sql_dir = xstrdup("sql");
	cfg->plots_dir = xstrdup("plots");
	cfg->cache_dir = xstrdup("build/plot-cache");
	cfg->commit_url = xstrdup("");
	cfg->range_url = xstrdup("");
	cfg->max_body = 8 << 20;
	cfg->threads = 4;
	cfg->max_results = 2000;
	cfg->max_connections = 1024;
	cfg->max_client_connections = 32;
	cfg->idle_timeout = 30;
	cfg->stop_timeout = 30;
	cfg->webhook_url = xstrdup("");
	cfg->webhook_max_delay = 300;
	cfg->webhook_settle = 30;
	detect_config_default(&cfg->detect);
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (keys[i].kind == STR)
			free(*(char **)((char *)cfg + keys[i].off));
}

int config_set(struct config *cfg, const char *name, const char *value, const char *where)
{
	const struct key *k = NULL;
	char *end;
	void *field;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(keys[i].name, name))
			k = &keys[i];
	if (!k) {
		log_err("%s: unknown key '%s' (see --help)", where, name);
		return -EINVAL;
	}
	field = (char *)cfg + k->off;
	errno = 0;
	switch (k->kind) {
	case STR:
		if (!strcmp(k->name, "commit_url") && *value) {
			const char *p = strstr(value, "%s");

			if (!p || strchr(value, '%') != p || strchr(p + 2, '%')) {
				log_err("%s: %s must hold exactly one %%s and no other %%", where,
					name);
				return -EINVAL;
			}
		}
		if (!strcmp(k->name, "range_url") && *value) {
			const char *p = strstr(value, "%s"), *q = p ? strstr(p + 2, "%s") : NULL;

			if (!q || strchr(value, '%') != p || strchr(p + 2, '%') != q ||
			    strchr(q + 2, '%')) {
				log_err("%s: %s must hold exactly two %%s and no other %%", where,
					name);
				return -EINVAL;
			}
		}
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return 0;
	case UINT:
	case SIZE: {
		unsigned long long v;

		if (!isdigit((unsigned char)*value))
			goto bad;
		v = strtoull(value, &end, 10);
		if (errno || *end || v < k->min || v > k->max)
			goto bad;
		if (k->kind == UINT)
			*(unsigned int *)field = v;
		else
			*(size_t *)field = v;
		return 0;
	}
	case PROB:
	case REAL: {
		double v = strtod(value, &end);

		if (errno || end == value || *end || !isfinite(v) || v > k->max ||
		    (k->kind == PROB ? v <= k->min : v < k->min))
			goto bad;
		*(double *)field = v;
		return 0;
	}
	}
bad:
	if (k->kind == PROB || k->kind == REAL)
		log_err("%s: %s = '%s': not a number in %c%g, %g]", where, name, value,
			k->kind == PROB ? '(' : '[', k->min, k->max);
	else
		log_err("%s: %s = '%s': not an integer in [%.0f, %.0f]", where, name, value,
			k->min, k->max);
	return -EINVAL;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

int config_load_file(struct config *cfg, const char *path)
{
	char line[4096], where[PATH_MAX + 32];
	unsigned int n = 0;
	int ret = 0;
	FILE *f;

	f = fopen(path, "r");
	if (!f) {
		log_err("config %s: %s", path, strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char *eq, *key, *s;

		n++;
		snprintf(where, sizeof(where), "%s:%u", path, n);
		if (!strchr(line, '\n') && !feof(f)) {
			log_err("%s: line too long", where);
			ret = -EINVAL;
			break;
		}
		s = trim(line);
		if (!*s || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			log_err("%s: expected 'key = value'", where);
			ret = -EINVAL;
			break;
		}
		*eq = 0;
		key = trim(s);
		ret = config_set(cfg, key, trim(eq + 1), where);
		if (ret)
			break;
	}
	fclose(f);
	return ret;
}

int config_load_env(struct config *cfg)
{
	char var[64];

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v;
		size_t j;

		j = snprintf(var, sizeof(var), "KMMU_REGRESSD_");
		for (const char *p = keys[i].name; *p && j < sizeof(var) - 1; p++)
			var[j++] = toupper((unsigned char)*p);
		var[j] = 0;
		v = getenv(var);
		if (v && config_set(cfg, keys[i].name, v, var))
			return -EINVAL;
	}
	return 0;
}

int config_check(const struct config *cfg)
{
	if (!*cfg->tokens_file) {
		log_err("config: tokens_file is required (who may submit results)");
		return -EINVAL;
	}
	if (detect_config_check(&cfg->detect)) {
		log_err("config: detect_window must be at least twice detect_min_size");
		return -EINVAL;
	}
	if (cfg->max_client_connections > cfg->max_connections) {
		log_err("config: max_client_connections (%u) is over max_connections (%u)",
			cfg->max_client_connections, cfg->max_connections);
		return -EINVAL;
	}
	if (*cfg->webhook_url) {
		struct webhook w;

		if (webhook_parse(cfg->webhook_url, &w)) {
			log_err("config: webhook_url = '%s': not an http://host[:port][/path] URL",
				cfg->webhook_url);
			return -EINVAL;
		}
	}
	if (!*cfg->listen) {
		log_err("config: listen must name an address");
		return -EINVAL;
	}
	return 0;
}

void config_help(void)
{
	printf("kmmu-regressd: stores kmmu bench results in PostgreSQL, finds change points\n"
	       "per commit and serves the dashboard and its plots.\n\n"
	       "usage: kmmu-regressd [-c FILE] [--check-config] [-h]\n"
	       "  -c, --config FILE   read settings from FILE (\"key = value\" lines, # comments)\n"
	       "  --check-config      check the settings and the tokens file, then exit\n"
	       "  -h, --help          this text\n\n"
	       "Settings (file key; environment KMMU_REGRESSD_<KEY> overrides the file):\n");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		printf("  %-22s %s\n", keys[i].name, keys[i].help);
	printf("\nSIGTERM or SIGINT stops it cleanly: it takes no new connection and answers\n"
	       "the requests in flight (for stop_timeout seconds at most) before it exits.\n");
}
