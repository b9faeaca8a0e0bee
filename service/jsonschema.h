/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A JSON Schema (draft-07) validator over jansson, for the documents the
 * regression service accepts (bench/results.schema.json).
 *
 * Loading compiles the schema and refuses anything it would not check: an
 * unknown keyword, a $ref that is not a local JSON pointer or does not
 * resolve, a cycle of $refs/combinators that consumes no input, a pattern
 * that cannot be translated to a POSIX regex. So a loaded schema is checked
 * in full.
 *
 * Keywords:
 *   annotations  $schema (draft-07 only), $id (root only), title, description,
 *                $comment, default, examples, readOnly, writeOnly,
 *                definitions, $defs
 *   references   $ref: "#" or "#/json/pointer" (~0, ~1 and %XX unescaped);
 *                siblings of a $ref must be annotations, since draft-07
 *                ignores them
 *   any          type, enum, const, allOf, anyOf, oneOf, not, if/then/else
 *   numbers      minimum, maximum, exclusiveMinimum, exclusiveMaximum (numeric,
 *                draft-06+ form), multipleOf
 *   strings      minLength, maxLength (in code points), pattern, format
 *   arrays       items (schema or tuple), additionalItems, minItems, maxItems,
 *                uniqueItems, contains
 *   objects      properties, patternProperties, additionalProperties,
 *                required, minProperties, maxProperties, propertyNames,
 *                dependencies
 *
 * Semantics follow draft-07: "integer" is any number with a zero fractional
 * part (a jansson real 3.0 is one), numbers compare by value in enum, const
 * and uniqueItems (1 == 1.0, but true != 1). "format" is an annotation and
 * is not asserted, as draft-07 validators do by default.
 *
 * Patterns are ECMA-262 regexes, translated to POSIX extended regexes and
 * matched in the C.UTF-8 locale, so "." and classes match code points:
 * literals, ".", anchors ^ $, groups ( ) (?: ), |, the quantifiers * + ?
 * {m} {m,} {m,n} (lazy forms too), classes [...] [^...] with ASCII ranges,
 * the escapes \d \D \w \W \s \S \t \n \r \f \v \xHH \uHHHH and escaped
 * punctuation. Refused when loading: lookarounds, backreferences, \b \B,
 * named groups, Unicode properties, ranges over non-ASCII characters.
 * As in ECMA-262, \d \w are ASCII, $ matches only at the end of the string.
 *
 * Errors are reported with a JSON pointer into the document ("/" is the
 * document itself), several separated by "; ", at most JS_MAX_ERRORS, e.g.
 *   /results/3/samples/0: expected number, got string
 *
 * Validation recurses at most JS_MAX_DEPTH schema levels; a document that
 * needs more is invalid. A loaded schema is read-only: js_validate() may run
 * in several threads at once (patterns switch the calling thread's locale
 * with uselocale() only around regexec()). Strings may hold NUL (jansson's
 * JSON_ALLOW_NUL). Links with -ljansson alone.
 */
#ifndef KMMU_SERVICE_JSONSCHEMA_H
#define KMMU_SERVICE_JSONSCHEMA_H

#include <stddef.h>
#include <jansson.h>

#define JS_MAX_ERRORS	5
#define JS_MAX_DEPTH	256

struct js_schema;

/*
 * Compile @schema (not kept: the schema holds its own copy). NULL on error,
 * with a message in @err, e.g. "unsupported keyword 'foo' at /definitions/x".
 */
struct js_schema *js_schema_load(const json_t *schema, char *err, size_t errlen);
struct js_schema *js_schema_load_file(const char *path, char *err, size_t errlen);
void js_schema_free(struct js_schema *s);

/*
 * 0 if @doc is valid; otherwise -1 with the errors in @err (which may be
 * NULL with @errlen 0).
 */
int js_validate(const struct js_schema *s, const json_t *doc, char *err, size_t errlen);

#endif
