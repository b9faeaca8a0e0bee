// SPDX-License-Identifier: GPL-2.0
/*
 * Validate JSON documents against a JSON Schema with service/jsonschema.c.
 *
 *   jsonschema_cli SCHEMA DOC            exit 0 valid, 1 invalid, 2 error
 *   jsonschema_cli SCHEMA --lines FILE   one document per line; prints one
 *                                        "valid" / "invalid\t<errors>" /
 *                                        "error\t<parse error>" line each
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../jsonschema.h"

/* any root, and strings with NUL (\u0000): the validator handles both */
#define LOAD_FLAGS	(JSON_DECODE_ANY | JSON_ALLOW_NUL)

static int lines(const struct js_schema *s, const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	char err[1024];
	json_error_t jerr;
	size_t cap = 0;
	char *line = NULL;
	ssize_t n;
	json_t *doc;

	if (!f) {
		perror(path);
		return 2;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		doc = json_loadb(line, (size_t)n, LOAD_FLAGS, &jerr);
		if (!doc) {
			printf("error\t%s\n", jerr.text);
			continue;
		}
		if (js_validate(s, doc, err, sizeof(err)))
			printf("invalid\t%s\n", err);
		else
			printf("valid\n");
		json_decref(doc);
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	struct js_schema *s;
	json_error_t jerr;
	char err[1024];
	json_t *doc;
	int rc;

	if (argc == 4 && !strcmp(argv[2], "--lines")) {
	} else if (argc != 3) {
		fprintf(stderr, "usage: %s SCHEMA DOC | SCHEMA --lines FILE\n", argv[0]);
		return 2;
	}
	s = js_schema_load_file(argv[1], err, sizeof(err));
	if (!s) {
		fprintf(stderr, "%s: %s\n", argv[1], err);
		return 2;
	}
	if (argc == 4) {
		rc = lines(s, argv[3]);
		js_schema_free(s);
		return rc;
	}
	doc = json_load_file(argv[2], LOAD_FLAGS, &jerr);
	if (!doc) {
		fprintf(stderr, "%s:%d:%d: %s\n", argv[2], jerr.line, jerr.column, jerr.text);
		js_schema_free(s);
		return 2;
	}
	rc = js_validate(s, doc, err, sizeof(err)) ? 1 : 0;
	if (rc)
		fprintf(stderr, "%s: %s\n", argv[2], err);
	json_decref(doc);
	js_schema_free(s);
	return rc;
}
