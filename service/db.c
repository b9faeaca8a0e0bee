// SPDX-License-Identifier: GPL-2.0
/*
 * PostgreSQL: a pool of connections, each used by one request at a time;
 * queries always with parameters; errors logged with their SQLSTATE; a
 * connection that went away is reset when it is next taken.  Also the
 * migrations in sql/ and the submitter tokens.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "regressd.h"

static struct {
	pthread_mutex_t	lock;
	pthread_cond_t	freed;
	PGconn		**conns;
	bool		*busy;
	unsigned int	size;
	char		*dsn;
} pool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.freed = PTHREAD_COND_INITIALIZER,
};

static void quiet_notice(void *arg, const PGresult *res)
{
}

static PGconn *connect_one(void)
{
	PGconn *c = PQconnectdb(pool.dsn);

	if (!c)
		return NULL;
	if (PQstatus(c) != CONNECTION_OK)
		log_warn("database: %s", PQerrorMessage(c));
	PQsetNoticeReceiver(c, quiet_notice, NULL);
	return c;
}

int db_pool_init(const char *dsn, unsigned int size)
{
	pool.dsn = strdup(dsn);
	pool.conns = calloc(size, sizeof(*pool.conns));
	pool.busy = calloc(size, sizeof(*pool.busy));
	if (!pool.dsn || !pool.conns || !pool.busy)
		return -ENOMEM;
	pool.size = size;
	return 0;
}

void db_pool_destroy(void)
{
	for (unsigned int i = 0; i < pool.size; i++)
		if (pool.conns[i])
			PQfinish(pool.conns[i]);
	free(pool.conns);
	free(pool.busy);
	free(pool.dsn);
	pool.size = 0;
}

static void release(unsigned int i)
{
	pthread_mutex_lock(&pool.lock);
	pool.busy[i] = false;
	pthread_cond_signal(&pool.freed);
	pthread_mutex_unlock(&pool.lock);
}

/*
 * A connection for this caller alone, connected if the server can be
 * reached; NULL (and the caller answers 503) when it cannot.
 */
PGconn *db_get(void)
{
	unsigned int i;
	PGconn *c;

	pthread_mutex_lock(&pool.lock);
	for (;;) {
		for (i = 0; i < pool.size; i++)
			if (!pool.busy[i])
				break;
		if (i < pool.size)
			break;
		pthread_cond_wait(&pool.freed, &pool.lock);
	}
	pool.busy[i] = true;
	pthread_mutex_unlock(&pool.lock);

	c = pool.conns[i];
	if (!c) {
		c = connect_one();
		pthread_mutex_lock(&pool.lock);
		pool.conns[i] = c;
		pthread_mutex_unlock(&pool.lock);
	} else if (PQstatus(c) != CONNECTION_OK) {
		PQreset(c);
		if (PQstatus(c) == CONNECTION_OK)
			log_info("database: reconnected");
	}
	if (c && PQstatus(c) == CONNECTION_OK)
		return c;
	log_warn("database unreachable: %s", c ? PQerrorMessage(c) : "out of memory");
	release(i);
	return NULL;
}

void db_put(PGconn *c)
{
	pthread_mutex_lock(&pool.lock);
	for (unsigned int i = 0; i < pool.size; i++)
		if (pool.busy[i] && pool.conns[i] == c) {
			pool.busy[i] = false;
			pthread_cond_signal(&pool.freed);
			break;
		}
	pthread_mutex_unlock(&pool.lock);
}

/* What an error means for the request: the client's, the server's, or down. */
static int classify(PGconn *c, const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(c) != CONNECTION_OK || !state)
		return -ENOTCONN;
	/* 08: connection exception; 57P0x: the server is shutting down. */
	if (!strncmp(state, "08", 2) || !strncmp(state, "57P", 3))
		return -ENOTCONN;
	if (!strcmp(state, "23505"))
		return -EEXIST;
	if (!strncmp(state, "23", 2) || !strncmp(state, "22", 2))
		return -EINVAL;
	return -EIO;
}

/*
 * A pooled connection whose server went away (a restart) is found broken
 * only when used.  A read or a BEGIN outside a transaction did nothing on
 * it yet, so it is sent again once on a new connection instead of failing
 * the request; a write is not, since it may have been done.
 */
static bool may_resend(PGconn *c, const char *sql)
{
	return PQtransactionStatus(c) == PQTRANS_IDLE &&
	       (!strncmp(sql, "BEGIN", 5) || !strncmp(sql, "SELECT", 6));
}

int db_exec(PGconn *c, PGresult **out, const char *sql, int n, const char *const *params)
{
	bool resend = may_resend(c, sql);
	PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	int ret;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && resend &&
	    PQstatus(c) == CONNECTION_BAD) {
		PQclear(res);
		PQreset(c);
		if (PQstatus(c) == CONNECTION_OK)
			log_info("database: reconnected");
		res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
		st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	}

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (out)
			*out = res;
		else
			PQclear(res);
		return 0;
	}
	ret = classify(c, res);
	if (ret == -EEXIST || ret == -EINVAL)
		log_info("database: SQLSTATE %s: %s",
			 PQresultErrorField(res, PG_DIAG_SQLSTATE),
			 PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
	else
		log_err("database: SQLSTATE %s: %s (in: %.60s)",
			res && PQresultErrorField(res, PG_DIAG_SQLSTATE) ?
			PQresultErrorField(res, PG_DIAG_SQLSTATE) : "none",
			res ? PQresultErrorMessage(res) : PQerrorMessage(c), sql);
	PQclear(res);
	if (out)
		*out = NULL;
	return ret;
}

int db_cmd(PGconn *c, const char *sql, int n, const char *const *params)
{
	return db_exec(c, NULL, sql, n, params);
}

int db_begin(PGconn *c)
{
	return db_cmd(c, "BEGIN", 0, NULL);
}

int db_commit(PGconn *c)
{
	return db_cmd(c, "COMMIT", 0, NULL);
}

void db_rollback(PGconn *c)
{
	if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE)
		db_cmd(c, "ROLLBACK", 0, NULL);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int is_migration(const struct dirent *d)
{
	const char *n = d->d_name;
	size_t len = strlen(n);

	return len > 8 && isdigit((unsigned char)n[0]) && isdigit((unsigned char)n[1]) &&
	       isdigit((unsigned char)n[2]) && n[3] == '_' && !strcmp(n + len - 4, ".sql");
}

static char *read_file(const char *path)
{
	char *buf = NULL;
	long len;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
		goto out;
	buf = malloc(len + 1);
	if (buf && fread(buf, 1, len, f) != (size_t)len) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[len] = 0;
out:
	fclose(f);
	return buf;
}

/*
 * Apply sql/NNN_name.sql files newer than the recorded version, all in one
 * transaction, under an advisory lock so that two daemons starting at once
 * do not both apply them.  A failing migration leaves the schema as it was.
 */
int db_migrate(PGconn *c, const char *sql_dir)
{
	struct dirent **names;
	int n, ret, applied = 0;
	long current;
	PGresult *res;

	n = scandir(sql_dir, &names, is_migration, by_name);
	if (n < 0) {
		log_err("migrations: %s: %s", sql_dir, strerror(errno));
		return -errno;
	}
	ret = db_begin(c);
	if (!ret)
		ret = db_cmd(c, "SELECT pg_advisory_xact_lock(7106, 1)", 0, NULL);
	if (!ret)
		ret = db_cmd(c, "CREATE TABLE IF NOT EXISTS schema_version ("
			     " version integer PRIMARY KEY, name text NOT NULL,"
			     " applied timestamptz NOT NULL DEFAULT now())", 0, NULL);
	if (!ret)
		ret = db_exec(c, &res, "SELECT coalesce(max(version), 0) FROM schema_version",
			      0, NULL);
	if (ret)
		goto out;
	current = atol(PQgetvalue(res, 0, 0));
	PQclear(res);

	for (int i = 0; i < n && !ret; i++) {
		const char *name = names[i]->d_name;
		long version = atol(name);
		char path[4096], vbuf[24];
		const char *params[2] = { vbuf, name };
		char *sql;

		if (version <= current)
			continue;
		snprintf(path, sizeof(path), "%s/%s", sql_dir, name);
		sql = read_file(path);
		if (!sql) {
			log_err("migrations: %s: %s", path, strerror(errno));
			ret = -EIO;
			break;
		}
		/* A script of several statements: the simple query protocol. */
		res = PQexec(c, sql);
		free(sql);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			log_err("migration %s: SQLSTATE %s: %s", name,
				PQresultErrorField(res, PG_DIAG_SQLSTATE),
				PQresultErrorMessage(res));
			PQclear(res);
			ret = -EIO;
			break;
		}
		PQclear(res);
		snprintf(vbuf, sizeof(vbuf), "%ld", version);
		ret = db_cmd(c, "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
			     2, params);
		applied++;
		current = version;
	}
	if (!ret)
		ret = db_commit(c);
out:
	if (ret)
		db_rollback(c);
	else
		log_info("schema at version %ld (%d migration%s applied)", current, applied,
			 applied == 1 ? "" : "s");
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

static bool token_ok(const char *t)
{
	size_t len = strlen(t);

	if (len < 16 || len > 256)
		return false;
	for (; *t; t++)
		if (!isalnum((unsigned char)*t) && !strchr("-._~+/=", *t))
			return false;
	return true;
}

/*
 * The tokens file is the truth: each "name token" line is a submitter, and
 * a name no longer in the file is revoked.  Only SHA-256 of each token
 * reaches the database.
 */
int db_sync_tokens(PGconn *c, const char *tokens_file)
{
	char line[1024], names[64 * 1024] = "{";
	unsigned int lineno = 0, count = 0;
	size_t nl = 1;
	int ret;
	FILE *f;

	f = fopen(tokens_file, "r");
	if (!f) {
		log_err("tokens %s: %s", tokens_file, strerror(errno));
		return -errno;
	}
	ret = db_begin(c);
	while (!ret && fgets(line, sizeof(line), f)) {
		char name[128], token[300], role[16], extra[2];
		const char *params[3] = { name, token, "false" };
		int k;

		lineno++;
		if (line[strspn(line, " \t\r\n")] == 0 || line[strspn(line, " \t")] == '#')
			continue;
		k = sscanf(line, "%127s %299s %15s %1s", name, token, role, extra);
		if ((k != 2 && k != 3) || !token_ok(token) || strpbrk(name, "{},\"\\")) {
			log_err("%s:%u: expected 'name token' or 'name token admin' (a token is "
				"16 to 256 of A-Z a-z 0-9 - . _ ~ + / =)", tokens_file, lineno);
			ret = -EINVAL;
			break;
		}
		if (k == 3 && strcmp(role, "admin")) {
			log_err("%s:%u: '%s': the only role after a token is 'admin'", tokens_file,
				lineno, role);
			ret = -EINVAL;
			break;
		}
		if (k == 3)
			params[2] = "true";
		ret = db_cmd(c, "INSERT INTO tokens (name, hash, admin) VALUES"
			     " ($1, sha256(convert_to($2, 'UTF8')), $3::boolean)"
			     " ON CONFLICT (name) DO UPDATE SET hash = EXCLUDED.hash, revoked = false,"
			     " admin = EXCLUDED.admin", 3, params);
		if (ret == -EEXIST)
			log_err("%s:%u: token of '%s' is already another name's", tokens_file,
				lineno, name);
		nl += snprintf(names + nl, sizeof(names) - nl, "%s\"%s\"", count ? "," : "",
			       name);
		if (nl >= sizeof(names) - 2) {
			log_err("%s: too many tokens", tokens_file);
			ret = -E2BIG;
		}
		count++;
	}
	fclose(f);
	if (!ret && !count) {
		log_err("%s: no token: nobody could submit", tokens_file);
		ret = -EINVAL;
	}
	if (!ret) {
		const char *params[1] = { names };

		strcat(names, "}");
		ret = db_cmd(c, "UPDATE tokens SET revoked = true WHERE NOT (name = ANY ($1::text[]))",
			     1, params);
	}
	if (!ret)
		ret = db_commit(c);
	if (ret)
		db_rollback(c);
	else
		log_info("%u submitter token%s", count, count == 1 ? "" : "s");
	return ret;
}
