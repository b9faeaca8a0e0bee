// SPDX-License-Identifier: GPL-2.0
/* The JSON results document of a bench run, with jansson. */
#include <errno.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "kmmu_lib.h"
#include "results.h"

struct bench_results {
	char *bench;
	json_t *params;		/* of the figures added next */
	json_t *results;
	json_t *floors;
};

struct bench_results *bench_results_new(const char *bench)
{
	struct bench_results *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->bench = strdup(bench);
	r->params = json_object();
	r->results = json_array();
	r->floors = json_array();
	if (!r->bench || !r->params || !r->results || !r->floors) {
		bench_results_free(r);
		return NULL;
	}
	return r;
}

void bench_results_free(struct bench_results *r)
{
	if (!r)
		return;
	free(r->bench);
	json_decref(r->params);
	json_decref(r->results);
	json_decref(r->floors);
	free(r);
}

void bench_results_param_int(struct bench_results *r, const char *key, long long v)
{
	json_object_set_new(r->params, key, json_integer(v));
}

void bench_results_param_str(struct bench_results *r, const char *key, const char *v)
{
	json_object_set_new(r->params, key, json_string(v));
}

static json_t *samples_array(const double *samples, int n)
{
	json_t *a = json_array();
	int i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_real(samples[i]));
	return a;
}

void bench_results_floor(struct bench_results *r, const char *metric, uint64_t entries,
			 const double *samples, int n)
{
	json_array_append_new(r->floors,
			      json_pack("{s:s, s:s, s:s, s:I, s:o}", "bench", r->bench,
					"metric", metric, "unit", "ns/entry",
					"entries", (json_int_t)entries,
					"samples", samples_array(samples, n)));
}

void bench_results_add(struct bench_results *r, const char *metric, const char *unit,
		       bool lower_is_better, const double *samples, int n, const char *floor)
{
	/* A copy of the parameters: later ones must not change this figure's. */
	json_t *res = json_pack("{s:s, s:o, s:s, s:s, s:b, s:o}", "bench", r->bench,
				"params", json_deep_copy(r->params), "metric", metric,
				"unit", unit, "lower_is_better", lower_is_better,
				"samples", samples_array(samples, n));

	if (floor)
		json_object_set_new(res, "floor", json_string(floor));
	json_array_append_new(r->results, res);
}

/* The first line @cmd prints, or "unknown". */
static json_t *command_line(const char *cmd)
{
	char line[256] = "";
	FILE *f = popen(cmd, "r");

	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = 0;
		pclose(f);
	}
	line[strcspn(line, "\n")] = 0;
	return json_string(line[0] ? line : "unknown");
}

/* @name from the environment when it is set and matches @pattern (a
 * POSIX extended regex), or NULL. */
static const char *env_value(const char *name, const char *pattern)
{
	const char *v = getenv(name);
	regex_t re;
	bool ok;

	if (!v || !*v || regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB))
		return NULL;
	ok = !regexec(&re, v, 0, NULL, 0);
	regfree(&re);
	if (!ok)
		fprintf(stderr, "results: %s='%s' is not a commit's; ignored\n", name, v);
	return ok ? v : NULL;
}

/*
 * The commit from git, or else -- in a tree shipped without .git, as
 * ansible/ deploys it -- from KMMU_COMMIT, KMMU_COMMIT_TIME,
 * KMMU_COMMIT_BRANCH and KMMU_COMMIT_PARENT.
 */
static json_t *commit_info(void)
{
	json_t *dirty = json_false();
	FILE *f = popen("git status --porcelain --untracked-files=no 2>/dev/null", "r");

	if (f) {
		if (fgetc(f) != EOF)
			dirty = json_true();
		pclose(f);
	}
	json_t *c = json_pack("{s:o, s:o, s:o, s:o}",
			      "sha", command_line("git rev-parse HEAD 2>/dev/null"),
			      "time", command_line("git show -s --format=%cI HEAD 2>/dev/null"),
			      "branch", command_line("git rev-parse --abbrev-ref HEAD 2>/dev/null"),
			      "dirty", dirty);
	json_t *parent = command_line("git rev-parse --verify -q HEAD^ 2>/dev/null");
	const char *sha = env_value("KMMU_COMMIT", "^[0-9a-f]{40}$");

	if (c && sha && !strcmp(json_string_value(json_object_get(c, "sha")), "unknown")) {
		const char *t = env_value("KMMU_COMMIT_TIME", "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ ]+$");
		const char *b = env_value("KMMU_COMMIT_BRANCH", "^[^[:space:]]+$");
		const char *p = env_value("KMMU_COMMIT_PARENT", "^[0-9a-f]{40}$");

		json_object_set_new(c, "sha", json_string(sha));
		if (t)
			json_object_set_new(c, "time", json_string(t));
		if (b)
			json_object_set_new(c, "branch", json_string(b));
		json_decref(parent);
		parent = json_string(p ? p : "unknown");
	}
	/* A root commit has none. */
	if (c && strcmp(json_string_value(parent), "unknown"))
		json_object_set(c, "parent", parent);
	json_decref(parent);
	return c;
}

/*
 * The SPTE format this host's VMs get by default: on the dev (and hw) backend the
 * module's spte_format parameter (0 = by vendor), else by vendor.
 */
static const char *default_spte_format(const char *vendor)
{
	bool amd = !strcmp(vendor, "AuthenticAMD") || !strcmp(vendor, "HygonGenuine");
	unsigned int param = 0;
	FILE *f;

	if (kmmu_backend() == KMMU_BACKEND_DEV) {
		f = fopen("/sys/module/kmmu/parameters/spte_format", "r");
		if (f) {
			if (fscanf(f, "%u", &param) != 1)
				param = 0;
			fclose(f);
		}
	}
	if (param == 1 || param == 2)
		return param == 1 ? "ept" : "npt";
	return amd ? "npt" : "ept";
}

/* "vendor_id" and "model name" of the first CPU in /proc/cpuinfo. */
static void cpu_info(char *vendor, char *model, size_t size)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];

	snprintf(vendor, size, "unknown");
	snprintf(model, size, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *v = strchr(line, ':');

		if (!v)
			continue;
		v += 1 + (v[1] == ' ');
		v[strcspn(v, "\n")] = 0;
		if (!strncmp(line, "vendor_id", 9))
			snprintf(vendor, size, "%s", v);
		else if (!strncmp(line, "model name", 10)) {
			snprintf(model, size, "%s", v);
			break;
		}
	}
	fclose(f);
}

/* KMMU_MACHINE_ID (bench/suite.sh sets it): 32 lowercase hex digits. */
static bool machine_id_ok(const char *id)
{
	size_t i;

	for (i = 0; id[i]; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return i == 32;
}

static json_t *host_info(void)
{
	const char *mid = getenv("KMMU_MACHINE_ID");
	char vendor[128], model[256];
	struct sysinfo si = {};
	struct utsname u = {};
	json_t *host;

	uname(&u);
	sysinfo(&si);
	cpu_info(vendor, model, sizeof(vendor));
	host = json_pack("{s:s, s:s, s:s, s:i, s:I, s:s, s:s, s:s}", "name", u.nodename,
			 "cpu_vendor", vendor, "cpu_model", model,
			 "cores", (int)sysconf(_SC_NPROCESSORS_ONLN),
			 "memory_bytes", (json_int_t)si.totalram * si.mem_unit,
			 "kernel", u.release, "backend", kmmu_backend_name(),
			 "spte_format", default_spte_format(vendor));
	if (host && mid && *mid) {
		if (machine_id_ok(mid))
			json_object_set_new(host, "machine_id", json_string(mid));
		else
			fprintf(stderr, "KMMU_MACHINE_ID=%s: not 32 lowercase hex digits; "
				"left out of the document\n", mid);
	}
	return host;
}

static json_t *new_document(void)
{
	char created[32];
	time_t now = time(NULL);

	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	return json_pack("{s:s, s:i, s:s, s:o, s:o, s:[], s:[]}", "schema", BENCH_SCHEMA,
			 "schema_version", BENCH_SCHEMA_VERSION, "created", created,
			 "commit", commit_info(), "host", host_info(), "floors", "results");
}

/* One more than the highest "run" in @items, or 0. */
static json_int_t next_run(json_t *items, json_int_t run)
{
	json_t *item;
	size_t i;

	json_array_foreach(items, i, item)
		if (json_integer_value(json_object_get(item, "run")) >= run)
			run = json_integer_value(json_object_get(item, "run")) + 1;
	return run;
}

static void set_run(json_t *items, json_int_t run)
{
	json_t *item;
	size_t i;

	json_array_foreach(items, i, item)
		json_object_set_new(item, "run", json_integer(run));
}

int bench_results_write(struct bench_results *r, const char *path)
{
	json_error_t err;
	json_int_t run;
	char tmp[4096];
	json_t *doc;
	int ret = 0;

	doc = json_load_file(path, 0, &err);
	if (!doc && access(path, F_OK) == 0) {
		fprintf(stderr, "%s: %s:%d: %s\n", path, err.source, err.line, err.text);
		return -EINVAL;
	}
	if (doc && (!json_is_string(json_object_get(doc, "schema")) ||
		    strcmp(json_string_value(json_object_get(doc, "schema")), BENCH_SCHEMA) ||
		    json_integer_value(json_object_get(doc, "schema_version")) !=
		    BENCH_SCHEMA_VERSION)) {
		fprintf(stderr, "%s: not a %s version %d document\n", path, BENCH_SCHEMA,
			BENCH_SCHEMA_VERSION);
		json_decref(doc);
		return -EINVAL;
	}
	if (!doc)
		doc = new_document();
	if (!doc)
		return -ENOMEM;
	/* This driver run's figures and floors go together, apart from others'. */
	run = next_run(json_object_get(doc, "results"), next_run(json_object_get(doc, "floors"), 0));
	set_run(r->floors, run);
	set_run(r->results, run);
	if (json_array_extend(json_object_get(doc, "floors"), r->floors) ||
	    json_array_extend(json_object_get(doc, "results"), r->results))
		ret = -ENOMEM;

	/* Written whole, then renamed: a reader never sees half a document. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!ret && json_dump_file(doc, tmp, JSON_INDENT(1) | JSON_SORT_KEYS))
		ret = -EIO;
	if (!ret && rename(tmp, path))
		ret = -errno;
	json_decref(doc);
	return ret;
}
