// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of service/jsonschema.c: every keyword valid and invalid, the
 * error messages and their paths, the schemas refused at load, and the bench's
 * own schema and documents.
 *
 *   ./jsonschema_test [REPO_ROOT]     (default: the current directory)
 *
 * built from the top of the tree with
 *   gcc -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -O1 -g
 *	-fsanitize=address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -Iservice
 *	-o jsonschema_test service/jsonschema.c service/tests/jsonschema_test.c -ljansson
 *
 * Schemas and documents below are JSON written with ' for " (none needs a
 * literal ').
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../jsonschema.h"

static int tests, failures;
static const char *root = ".";

static void result(bool pass, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void result(bool pass, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", pass ? "" : "not ", ++tests);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	failures += !pass;
}

/* JSON with ' for " */
static json_t *j(const char *text)
{
	char *s = strdup(text), *p;
	json_error_t jerr;
	json_t *v;

	for (p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	v = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!v)
		printf("# bad test JSON %s: %s\n", text, jerr.text);
	free(s);
	return v;
}

static struct js_schema *load(const char *schema, char *err, size_t errlen)
{
	json_t *v = j(schema);
	struct js_schema *s;

	if (!v) {
		snprintf(err, errlen, "bad test JSON");
		return NULL;
	}
	s = js_schema_load(v, err, errlen);
	json_decref(v);
	return s;
}

/*
 * @want: NULL for valid; "=msg" for exactly that error message; otherwise a
 * substring of it.
 */
struct vcase {
	const char *schema, *doc, *want;
};

static void run_vcase(const struct vcase *c)
{
	char err[1024] = "", lerr[256];
	struct js_schema *s = load(c->schema, lerr, sizeof(lerr));
	json_t *doc = j(c->doc);
	bool pass;
	int rc;

	if (!s || !doc) {
		result(false, "%s against %s: schema refused: %s", c->doc, c->schema,
		       s ? "" : lerr);
		js_schema_free(s);
		json_decref(doc);
		return;
	}
	rc = js_validate(s, doc, err, sizeof(err));
	if (!c->want)
		pass = rc == 0 && !*err;
	else if (c->want[0] == '=')
		pass = rc == -1 && !strcmp(err, c->want + 1);
	else
		pass = rc == -1 && strstr(err, c->want);
	result(pass, "%s %s %s", c->doc, c->want ? "invalid against" : "valid against",
	       c->schema);
	if (!pass)
		printf("#   rc %d, error \"%s\", want %s\n", rc, err,
		       c->want ? c->want : "valid");
	js_schema_free(s);
	json_decref(doc);
}

static const struct vcase vcases[] = {
	/* type */
	{ "{'type':'string'}", "'x'", NULL },
	{ "{'type':'string'}", "1", "=/: expected string, got integer" },
	{ "{'type':'integer'}", "3", NULL },
	{ "{'type':'integer'}", "3.0", NULL },
	{ "{'type':'integer'}", "-0.0", NULL },
	{ "{'type':'integer'}", "3.5", "=/: expected integer, got number" },
	{ "{'type':'integer'}", "'3'", "expected integer, got string" },
	{ "{'type':'integer'}", "true", "expected integer, got boolean" },
	{ "{'type':'number'}", "1", NULL },
	{ "{'type':'number'}", "1.5", NULL },
	{ "{'type':'number'}", "false", "expected number, got boolean" },
	{ "{'type':'null'}", "null", NULL },
	{ "{'type':'null'}", "0", "expected null, got integer" },
	{ "{'type':'boolean'}", "false", NULL },
	{ "{'type':'boolean'}", "0", "expected boolean" },
	{ "{'type':'object'}", "{}", NULL },
	{ "{'type':'object'}", "[]", "expected object, got array" },
	{ "{'type':'array'}", "[]", NULL },
	{ "{'type':'array'}", "{}", "expected array, got object" },
	{ "{'type':['string','null']}", "null", NULL },
	{ "{'type':['string','null']}", "1", "=/: expected null or string, got integer" },
	/* enum, const: numbers by value, but true is not 1 */
	{ "{'enum':[1,'a',null,[1,2],{'a':1}]}", "1.0", NULL },
	{ "{'enum':[1,'a',null,[1,2],{'a':1}]}", "'a'", NULL },
	{ "{'enum':[1,'a',null,[1,2],{'a':1}]}", "null", NULL },
	{ "{'enum':[1,'a',null,[1,2],{'a':1}]}", "[1,2.0]", NULL },
	{ "{'enum':[1,'a',null,[1,2],{'a':1}]}", "{'a':1.0}", NULL },
	{ "{'enum':[1,'a',null,[1,2],{'a':1}]}", "true", "true is not one of 1, \"a\", null" },
	{ "{'enum':[1,'a',null,[1,2],{'a':1}]}", "[2,1]", "an array is not one of" },
	{ "{'enum':[1,'a',null,[1,2],{'a':1}]}", "{'a':1,'b':2}", "not one of" },
	{ "{'enum':['dev','user']}", "'xen'", "=/: \"xen\" is not one of \"dev\", \"user\"" },
	{ "{'enum':[]}", "1", "is not one of" },
	{ "{'const':1}", "1.0", NULL },
	{ "{'const':1}", "true", "=/: expected 1, got true" },
	{ "{'const':false}", "0", "expected false, got 0" },
	{ "{'const':'a\\u0000b'}", "'a\\u0000b'", NULL },
	{ "{'const':'a\\u0000b'}", "'a'", "expected \"a?b\", got \"a\"" },
	{ "{'const':{'a':[1,{'b':null}]}}", "{'a':[1.0,{'b':null}]}", NULL },
	{ "{'const':{'a':[1,{'b':null}]}}", "{'a':[1,{'b':0}]}", "expected an object" },
	/* numbers */
	{ "{'minimum':0}", "0", NULL },
	{ "{'minimum':0}", "-1", "=/: -1 is less than minimum 0" },
	{ "{'minimum':0}", "-0.5", "-0.5 is less than minimum 0" },
	{ "{'minimum':0}", "'x'", NULL },
	{ "{'minimum':0.5}", "0.25", "0.25 is less than minimum 0.5" },
	{ "{'exclusiveMinimum':0}", "0", "0 is not greater than exclusiveMinimum 0" },
	{ "{'exclusiveMinimum':0}", "1e-9", NULL },
	{ "{'maximum':10}", "10.0", NULL },
	{ "{'maximum':10}", "10.5", "10.5 is greater than maximum 10" },
	{ "{'exclusiveMaximum':10}", "9", NULL },
	{ "{'exclusiveMaximum':10}", "10", "10 is not less than exclusiveMaximum 10" },
	{ "{'maximum':9007199254740992}", "9007199254740993", "is greater than maximum" },
	{ "{'maximum':9007199254740992.0}", "9007199254740993", "is greater than maximum" },
	{ "{'multipleOf':2}", "4", NULL },
	{ "{'multipleOf':2}", "4.0", NULL },
	{ "{'multipleOf':2}", "5", "5 is not a multiple of 2" },
	{ "{'multipleOf':0.5}", "1.5", NULL },
	{ "{'multipleOf':3}", "6.0", NULL },
	{ "{'multipleOf':3}", "7.0", "7 is not a multiple of 3" },
	{ "{'multipleOf':3}", "6.5", "not a multiple of 3" },
	{ "{'multipleOf':3}", "3e20", NULL },
	{ "{'multipleOf':3}", "1e20", "not a multiple of 3" },
	{ "{'multipleOf':1024}", "1e300", NULL },
	{ "{'multipleOf':1e-300}", "1e300", "not a multiple" },
	{ "{'multipleOf':0.5}", "1.25", "not a multiple of 0.5" },
	/* strings: lengths count code points */
	{ "{'minLength':2,'maxLength':3}", "'\\u00e9'",
	  "=/: string of 1 characters is shorter than minLength 2" },
	{ "{'minLength':2,'maxLength':3}", "'\\u00e9\\u00e9'", NULL },
	{ "{'minLength':2,'maxLength':3}", "'\\u65e5\\u672c\\u8a9e'", NULL },
	{ "{'minLength':2,'maxLength':3}", "'\\u65e5\\u672c\\u8a9ex'",
	  "string of 4 characters is longer than maxLength 3" },
	{ "{'minLength':2,'maxLength':3}", "'\\ud83d\\ude00\\ud83d\\ude00'", NULL },
	{ "{'minLength':2,'maxLength':3}", "1", NULL },
	{ "{'minLength':1}", "''", "shorter than minLength 1" },
	{ "{'minLength':1.0}", "'a'", NULL },
	/* patterns: ECMA-262, searched anywhere unless anchored */
	{ "{'pattern':'^[0-9]{4}$'}", "'2024'", NULL },
	{ "{'pattern':'^[0-9]{4}$'}", "'20245'",
	  "=/: \"20245\" does not match pattern ^[0-9]{4}$" },
	{ "{'pattern':'^[0-9]{4}$'}", "'2024\\n'", "does not match" },
	{ "{'pattern':'b'}", "'abc'", NULL },
	{ "{'pattern':'^\\\\d+\\\\s\\\\w+$'}", "'12 ab_9'", NULL },
	{ "{'pattern':'^\\\\d+$'}", "'12a'", "does not match" },
	{ "{'pattern':'^\\\\D\\\\W\\\\S$'}", "'a-b'", NULL },
	{ "{'pattern':'^\\\\D\\\\W\\\\S$'}", "'1-b'", "does not match" },
	{ "{'pattern':'^.$'}", "'\\u00e9'", NULL },
	{ "{'pattern':'^.$'}", "'\\ud83d\\ude00'", NULL },
	{ "{'pattern':'^a.c$'}", "'a\\nc'", "does not match" },
	{ "{'pattern':'^a.c$'}", "'a\\u0000c'", NULL },
	{ "{'pattern':'^a\\\\x41\\\\u00e9$'}", "'aA\\u00e9'", NULL },
	{ "{'pattern':'^[^a]$'}", "'\\u00e9'", NULL },
	{ "{'pattern':'^[^a]$'}", "'a'", "does not match" },
	{ "{'pattern':'^(?:ab)+c?$'}", "'abab'", NULL },
	{ "{'pattern':'^(?:ab)+c?$'}", "'aba'", "does not match" },
	{ "{'pattern':'^(x|yz){2,3}$'}", "'xyzx'", NULL },
	{ "{'pattern':'^(x|yz){2,3}$'}", "'x'", "does not match" },
	{ "{'pattern':'^a+?b*?$'}", "'aab'", NULL },
	{ "{'pattern':'^a\\\\.b$'}", "'a.b'", NULL },
	{ "{'pattern':'^a\\\\.b$'}", "'axb'", "does not match" },
	{ "{'pattern':'^[\\\\]\\\\-a]+$'}", "']-a'", NULL },
	{ "{'pattern':'^[\\\\^]$'}", "'^'", NULL },
	{ "{'pattern':'^[^^]$'}", "'^'", "does not match" },
	{ "{'pattern':'^[[a]+$'}", "'[a'", NULL },
	{ "{'pattern':'^[:a]+$'}", "':a'", NULL },
	{ "{'pattern':'^[\\\\d_]+$'}", "'1_2'", NULL },
	{ "{'pattern':'^[\\\\s]+$'}", "' \\t\\u00a0\\u3000'", NULL },
	{ "{'pattern':'^[a-c\\\\/]+$'}", "'a/c'", NULL },
	{ "{'pattern':'^[a-c]+$'}", "'B'", "does not match" },
	{ "{'pattern':'}'}", "'}'", NULL },
	{ "{'pattern':''}", "''", NULL },
	{ "{'pattern':'^x'}", "1", NULL },
	/* format is an annotation */
	{ "{'format':'date-time'}", "'not a date'", NULL },
	/* objects */
	{ "{'properties':{'a':{'type':'integer'}},'required':['a'],"
	  "'additionalProperties':false}", "{'a':1}", NULL },
	{ "{'properties':{'a':{'type':'integer'}},'required':['a'],"
	  "'additionalProperties':false}", "{}", "=/: missing required property \"a\"" },
	{ "{'properties':{'a':{'type':'integer'}},'required':['a'],"
	  "'additionalProperties':false}", "{'a':1,'b':2}", "=/b: unexpected property" },
	{ "{'properties':{'a':{'type':'integer'}},'required':['a'],"
	  "'additionalProperties':false}", "{'a':'x'}", "=/a: expected integer, got string" },
	{ "{'properties':{'a':{'type':'integer'}},'required':['a'],"
	  "'additionalProperties':false}", "1", NULL },
	{ "{'additionalProperties':{'type':'string'}}", "{'x':1}",
	  "=/x: expected string, got integer" },
	{ "{'additionalProperties':{'type':'string'}}", "{'a/b~c':1}",
	  "=/a~1b~0c: expected string, got integer" },
	{ "{'patternProperties':{'^x_':{'type':'integer'}},'additionalProperties':false}",
	  "{'x_a':1}", NULL },
	{ "{'patternProperties':{'^x_':{'type':'integer'}},'additionalProperties':false}",
	  "{'x_a':'s'}", "=/x_a: expected integer, got string" },
	{ "{'patternProperties':{'^x_':{'type':'integer'}},'additionalProperties':false}",
	  "{'y':1}", "=/y: unexpected property" },
	{ "{'properties':{'ab':{'minimum':5}},'patternProperties':{'b$':{'maximum':3}}}",
	  "{'ab':4}", "=/ab: 4 is less than minimum 5; /ab: 4 is greater than maximum 3" },
	{ "{'minProperties':1,'maxProperties':2}", "{'a':1}", NULL },
	{ "{'minProperties':1,'maxProperties':2}", "{}", "fewer than minProperties 1" },
	{ "{'minProperties':1,'maxProperties':2}", "{'a':1,'b':1,'c':1}",
	  "more than maxProperties 2" },
	{ "{'propertyNames':{'pattern':'^[a-z]+$'}}", "{'ab':1}", NULL },
	{ "{'propertyNames':{'pattern':'^[a-z]+$'}}", "{'A':1}",
	  "=/: property name \"A\" does not match propertyNames" },
	{ "{'dependencies':{'a':['b'],'c':{'required':['d']}}}", "{'a':1,'b':1}", NULL },
	{ "{'dependencies':{'a':['b'],'c':{'required':['d']}}}", "{'a':1}",
	  "=/: property \"a\" requires property \"b\"" },
	{ "{'dependencies':{'a':['b'],'c':{'required':['d']}}}", "{'c':1}",
	  "=/: missing required property \"d\"" },
	{ "{'dependencies':{'a':['b'],'c':{'required':['d']}}}", "{'b':1,'d':1}", NULL },
	/* arrays */
	{ "{'items':{'type':'number'}}", "[1,2.5]", NULL },
	{ "{'items':{'type':'number'}}", "[1,'a']", "=/1: expected number, got string" },
	{ "{'items':[{'type':'string'},{'type':'integer'}],'additionalItems':false}",
	  "['a',1]", NULL },
	{ "{'items':[{'type':'string'},{'type':'integer'}],'additionalItems':false}",
	  "['a']", NULL },
	{ "{'items':[{'type':'string'},{'type':'integer'}],'additionalItems':false}",
	  "['a',1,2]", "=/2: no value is allowed here" },
	{ "{'items':[{'type':'string'}],'additionalItems':{'type':'null'}}",
	  "['a',null,1]", "=/2: expected null, got integer" },
	{ "{'items':[{'type':'string'},{'type':'integer'}]}", "[1]",
	  "=/0: expected string, got integer" },
	{ "{'minItems':1,'maxItems':2}", "[1]", NULL },
	{ "{'minItems':1,'maxItems':2}", "[]", "=/: array of 0 items is shorter than minItems 1" },
	{ "{'minItems':1,'maxItems':2}", "[1,2,3]", "array of 3 items is longer than maxItems 2" },
	{ "{'uniqueItems':true}", "[1,true,'1',[1],{'a':1},null,false,0]", NULL },
	{ "{'uniqueItems':true}", "[1,2,1.0]", "=/: items 0 and 2 are equal, uniqueItems" },
	{ "{'uniqueItems':true}", "[{'a':1,'b':[2]},{'b':[2.0],'a':1}]", "are equal" },
	{ "{'uniqueItems':true}", "[[1],[1,2]]", NULL },
	{ "{'uniqueItems':false}", "[1,1]", NULL },
	{ "{'contains':{'const':3}}", "[1,3]", NULL },
	{ "{'contains':{'const':3}}", "[]", "no item matches the contains schema" },
	{ "{'contains':{'const':3}}", "[1,2]", "no item matches" },
	/* combinators */
	{ "{'allOf':[{'minimum':1},{'maximum':3}]}", "2", NULL },
	{ "{'allOf':[{'minimum':1},{'maximum':3}]}", "4", "=/: 4 is greater than maximum 3" },
	{ "{'anyOf':[{'type':'string'},{'minimum':1}]}", "'a'", NULL },
	{ "{'anyOf':[{'type':'string'},{'minimum':1}]}", "0", "=/: matches no schema of anyOf" },
	{ "{'oneOf':[{'type':'integer'},{'minimum':1}]}", "0", NULL },
	{ "{'oneOf':[{'type':'integer'},{'minimum':1}]}", "1.5", NULL },
	{ "{'oneOf':[{'type':'integer'},{'minimum':1}]}", "2",
	  "=/: matches schemas 0 and 1 of oneOf, not just one" },
	{ "{'oneOf':[{'type':'integer'},{'minimum':1}]}", "0.5", "matches no schema of oneOf" },
	{ "{'not':{'type':'string'}}", "1", NULL },
	{ "{'not':{'type':'string'}}", "'a'", "=/: matches the schema of not" },
	{ "{'if':{'type':'integer'},'then':{'minimum':0},'else':{'type':'string'}}", "1", NULL },
	{ "{'if':{'type':'integer'},'then':{'minimum':0},'else':{'type':'string'}}", "-1",
	  "-1 is less than minimum 0" },
	{ "{'if':{'type':'integer'},'then':{'minimum':0},'else':{'type':'string'}}", "'s'",
	  NULL },
	{ "{'if':{'type':'integer'},'then':{'minimum':0},'else':{'type':'string'}}", "1.5",
	  "expected string, got number" },
	{ "{'properties':{'a':{'anyOf':[{'not':{'type':'array'}},{'items':{'type':'null'}}]}}}",
	  "{'a':[null,1]}", "=/a: matches no schema of anyOf" },
	/* boolean schemas */
	{ "true", "{'a':[1]}", NULL },
	{ "false", "1", "=/: no value is allowed here" },
	{ "{'properties':{'a':false}}", "{'a':1}", "=/a: no value is allowed here" },
	{ "{'properties':{'a':true}}", "{'a':1}", NULL },
	/* $ref, definitions, $defs; pointers unescaped */
	{ "{'definitions':{'a/b':{'type':'integer'},'c~d':{'type':'string'}},"
	  "'properties':{'x':{'$ref':'#/definitions/a~1b'},'y':{'$ref':'#/definitions/c~0d'}}}",
	  "{'x':1,'y':'s'}", NULL },
	{ "{'definitions':{'a/b':{'type':'integer'},'c~d':{'type':'string'}},"
	  "'properties':{'x':{'$ref':'#/definitions/a~1b'},'y':{'$ref':'#/definitions/c~0d'}}}",
	  "{'x':'1','y':2}",
	  "=/x: expected integer, got string; /y: expected string, got integer" },
	{ "{'$defs':{'p':{'minimum':0}},'items':{'$ref':'#/$defs/p'}}", "[0,-1]",
	  "=/1: -1 is less than minimum 0" },
	{ "{'definitions':{'a b':{'type':'null'}},'$ref':'#/definitions/a%20b'}", "null", NULL },
	{ "{'items':[{'type':'string'},{'type':'null'}],'properties':{'n':{'$ref':'#/items/1'}}}",
	  "{'n':1}", "=/n: expected null, got integer" },
	{ "{'type':'object','properties':{'child':{'$ref':'#'},'v':{'type':'integer'}},"
	  "'additionalProperties':false}", "{'child':{'child':{'v':1}}}", NULL },
	{ "{'type':'object','properties':{'child':{'$ref':'#'},'v':{'type':'integer'}},"
	  "'additionalProperties':false}", "{'child':{'child':{'x':1}}}",
	  "=/child/child/x: unexpected property" },
	{ "{'$ref':'#/definitions/r','definitions':{'r':{'type':'integer'}},"
	  "'description':'d','$comment':'c'}", "'x'", "expected integer" },
	/* annotations */
	{ "{'$schema':'http://json-schema.org/draft-07/schema#','$id':'https://x/y.json',"
	  "'title':'t','description':'d','$comment':'c','default':1,'examples':[1],"
	  "'readOnly':true,'writeOnly':false}", "1", NULL },
	/* several errors: the first JS_MAX_ERRORS */
	{ "{'items':{'type':'string'}}", "[1,2,3,4,5,6,7]",
	  "=/0: expected string, got integer; /1: expected string, got integer; "
	  "/2: expected string, got integer; /3: expected string, got integer; "
	  "/4: expected string, got integer" },
};

struct rcase {
	const char *schema, *want;
};

static const struct rcase rcases[] = {
	{ "{'definitions':{'x':{'unevaluatedProperties':false}}}",
	  "unsupported keyword 'unevaluatedProperties' at /definitions/x" },
	{ "{'properties':{'a':{'contentMediaType':'text/plain'}}}",
	  "unsupported keyword 'contentMediaType' at /properties/a" },
	{ "{'items':{'$ref':'#/definitions/nope'}}",
	  "unresolvable $ref \"#/definitions/nope\" at /items/$ref" },
	{ "{'properties':{'a':{'$ref':'#/definitions/x'}},'definitions':{'x':{'minLength':-1}}}",
	  "/definitions/x/minLength must be a non-negative integer" },
	{ "{'$ref':'#/definitions/a~2'}", "unresolvable $ref" },
	{ "{'$ref':'#/items/01','items':[true,true]}", "unresolvable $ref" },
	{ "{'$ref':'#/items/5','items':[true,true]}", "unresolvable $ref" },
	{ "{'$ref':'#definitions'}", "unresolvable $ref" },
	{ "{'$ref':'other.json#/a'}", "unsupported $ref \"other.json#/a\"" },
	{ "{'$ref':'#/required','required':['a']}", "a schema must be an object or a boolean" },
	{ "{'definitions':{'a':{'$ref':'#/definitions/b'},'b':{'$ref':'#/definitions/a'}}}",
	  "$ref cycle that consumes no input" },
	{ "{'definitions':{'a':{'$ref':'#/definitions/a'}}}", "$ref cycle" },
	{ "{'allOf':[{'$ref':'#'}]}", "$ref cycle" },
	{ "{'anyOf':[{'type':'null'},{'not':{'$ref':'#'}}]}", "$ref cycle" },
	{ "{'if':true,'then':{'$ref':'#'}}", "$ref cycle" },
	{ "{'dependencies':{'a':{'$ref':'#'}}}", "$ref cycle" },
	{ "{'properties':{'a':{'$ref':'#/definitions/x','type':'string'}},"
	  "'definitions':{'x':true}}", "keyword 'type' beside $ref at /properties/a" },
	{ "{'properties':{'a':{'$id':'#a'}}}", "unsupported $id in a subschema" },
	{ "{'$schema':'http://json-schema.org/draft-04/schema#'}", "unsupported $schema" },
	{ "{'type':'int'}", "unknown type int" },
	{ "{'type':[]}", "non-empty array" },
	{ "{'type':['string','string']}", "listed twice" },
	{ "{'minLength':-1}", "/minLength must be a non-negative integer" },
	{ "{'maxItems':1.5}", "must be a non-negative integer" },
	{ "{'required':'a'}", "must be an array of strings" },
	{ "{'required':['a','a']}", "lists \"a\" twice" },
	{ "{'multipleOf':0}", "must be greater than 0" },
	{ "{'minimum':'1'}", "must be a number" },
	{ "{'properties':{'a':1}}", "/properties/a: a schema must be an object or a boolean" },
	{ "{'allOf':[]}", "/allOf must be a non-empty array of schemas" },
	{ "{'enum':1}", "must be an array" },
	{ "{'uniqueItems':1}", "must be a boolean" },
	{ "{'format':1}", "must be a string" },
	{ "1", "/: a schema must be an object or a boolean" },
	/* patterns that cannot be translated */
	{ "{'pattern':'(?=a)'}", "lookarounds and named groups unsupported" },
	{ "{'pattern':'(?<n>a)'}", "lookarounds" },
	{ "{'pattern':'(a)\\\\1'}", "backreferences" },
	{ "{'pattern':'\\\\bfoo'}", "word boundaries" },
	{ "{'pattern':'a**'}", "nothing to repeat" },
	{ "{'pattern':'*a'}", "nothing to repeat" },
	{ "{'pattern':'^*'}", "nothing to repeat" },
	{ "{'pattern':'a{'}", "not a quantifier" },
	{ "{'pattern':'a{2,1}'}", "out of range" },
	{ "{'pattern':'a{99999}'}", "out of range" },
	{ "{'pattern':'(a'}", "unmatched '('" },
	{ "{'pattern':'a)'}", "unmatched ')'" },
	{ "{'pattern':'[z-a]'}", "range out of order" },
	{ "{'pattern':'[\\u00e0-\\u00ff]'}", "non-ASCII" },
	{ "{'pattern':'[\\\\d-z]'}", "class escape" },
	{ "{'pattern':'[\\\\W]'}", "inside a class" },
	{ "{'pattern':'[]'}", "empty classes" },
	{ "{'pattern':'[^]'}", "empty classes" },
	{ "{'pattern':'[ab'}", "unterminated class" },
	{ "{'pattern':'\\\\p{L}'}", "unknown escape" },
	{ "{'pattern':'\\\\q'}", "unknown escape" },
	{ "{'pattern':'a\\\\'}", "trailing backslash" },
	{ "{'pattern':'\\\\x0'}", "bad \\x or \\u escape" },
	{ "{'pattern':'\\\\ud800'}", "surrogate" },
	{ "{'pattern':'a\\u0000'}", "contains NUL" },
	{ "{'patternProperties':{'(?!x)':true}}", "lookarounds" },
};

static void test_refused(void)
{
	char err[256];
	struct js_schema *s;
	size_t i;

	for (i = 0; i < sizeof(rcases) / sizeof(rcases[0]); i++) {
		s = load(rcases[i].schema, err, sizeof(err));
		result(!s && strstr(err, rcases[i].want), "refused %s", rcases[i].schema);
		if (s || !strstr(err, rcases[i].want))
			printf("#   error \"%s\", want \"%s\"\n", s ? "(loaded)" : err,
			       rcases[i].want);
		js_schema_free(s);
	}
}

static void test_loads(void)
{
	static const char *const ok[] = {
		/* recursion that consumes input is fine */
		"{'properties':{'a':{'$ref':'#'}}}",
		"{'items':{'$ref':'#'}}",
		"{'definitions':{'t':{'anyOf':[{'type':'null'},"
		"{'items':{'$ref':'#/definitions/t'}}]}}}",
		"{'$ref':'#/definitions/x',"
		"'definitions':{'x':{'$ref':'#/definitions/y'},'y':true}}",
		"{'additionalItems':false}",
		"{'then':{'$ref':'#'}}",
	};
	char err[256];
	struct js_schema *s;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		s = load(ok[i], err, sizeof(err));
		result(s != NULL, "loads %s", ok[i]);
		if (!s)
			printf("#   %s\n", err);
		js_schema_free(s);
	}
}

/* a 10000-deep array, built without the parser (which stops at 2048) */
static json_t *deep_array(int depth)
{
	json_t *v = json_array(), *outer;
	int i;

	for (i = 1; i < depth; i++) {
		outer = json_array();
		json_array_append_new(outer, v);
		v = outer;
	}
	return v;
}

static void test_depth(void)
{
	char err[2048], lerr[256];
	struct js_schema *s = load("{'items':{'$ref':'#'}}", lerr, sizeof(lerr));
	json_t *d;
	int rc;

	d = deep_array(100);
	rc = js_validate(s, d, err, sizeof(err));
	result(rc == 0, "100-deep array, recursive schema: valid");
	json_decref(d);

	d = deep_array(10000);
	rc = js_validate(s, d, err, sizeof(err));
	result(rc == -1 && strstr(err, "nested deeper than 256 levels"),
	       "10000-deep array, recursive schema: invalid, no stack overflow (%s)",
	       rc ? "refused" : "accepted");
	/* jansson's own equality recursion is not used: uniqueItems */
	js_schema_free(s);
	s = load("{'uniqueItems':true}", lerr, sizeof(lerr));
	{
		json_t *pair = json_array();

		json_array_append(pair, d);
		json_array_append(pair, d);
		rc = js_validate(s, pair, err, sizeof(err));
		result(rc == -1 && strstr(err, "too deep"), "uniqueItems of 10000-deep items: %s",
		       err);
		json_decref(pair);
	}
	json_decref(d);
	js_schema_free(s);
}

static json_t *load_json(const char *rel)
{
	char path[4096];
	json_error_t jerr;
	json_t *v;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	v = json_load_file(path, 0, &jerr);
	if (!v)
		printf("# %s: %s\n", path, jerr.text);
	return v;
}

static void test_bench_schema(void)
{
	char path[4096], err[1024];
	static const char *const docs[] = {
		"service/tests/data/results-populate.json",
		"service/tests/data/results-suite.json",
	};
	struct js_schema *s;
	json_t *doc, *v;
	size_t i;

	snprintf(path, sizeof(path), "%s/bench/results.schema.json", root);
	s = js_schema_load_file(path, err, sizeof(err));
	result(s != NULL, "bench/results.schema.json loads%s%s", s ? "" : ": ", s ? "" : err);
	if (!s)
		return;
	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		doc = load_json(docs[i]);
		result(doc && !js_validate(s, doc, err, sizeof(err)), "%s valid", docs[i]);
		if (doc && *err)
			printf("#   %s\n", err);
		json_decref(doc);
	}

	doc = load_json(docs[0]);
	if (!doc) {
		js_schema_free(s);
		return;
	}
	/* the errors a broken document gets, in document order */
	json_object_del(json_object_get(doc, "host"), "cores");
	json_object_set_new(json_object_get(doc, "commit"), "sha", json_string("c8d4983"));
	v = json_array_get(json_object_get(doc, "results"), 1);
	json_array_set_new(json_object_get(v, "samples"), 0, json_string("fast"));
	json_object_set_new(json_object_get(v, "params"), "vcpus", json_real(1.5));
	json_object_set_new(v, "run", json_integer(-1));
	js_validate(s, doc, err, sizeof(err));
	result(!strcmp(err, "/commit/sha: \"c8d4983\" does not match pattern "
		       "^([0-9a-f]{40}|unknown)$; /host: missing required property \"cores\"; "
		       "/results/1/params/vcpus: expected string or integer, got number; "
		       "/results/1/run: -1 is less than minimum 0; "
		       "/results/1/samples/0: expected number, got string"),
	       "broken results document: five errors with paths");
	printf("#   %s\n", err);

	/* a short buffer truncates */
	js_validate(s, doc, err, 20);
	result(strlen(err) == 19, "errors truncated to the buffer: \"%s\"", err);
	result(js_validate(s, doc, NULL, 0) == -1, "no error buffer");

	/* a 10000-deep value where the schema wants a scalar costs no recursion */
	json_object_set_new(json_object_get(json_array_get(json_object_get(doc, "results"), 0),
					    "params"), "deep", deep_array(10000));
	js_validate(s, doc, err, sizeof(err));
	result(strstr(err, "/results/0/params/deep: expected string or integer, got array") != NULL,
	       "10000-deep params value refused by type");
	json_decref(doc);
	js_schema_free(s);

	s = js_schema_load_file("/nonexistent/schema.json", err, sizeof(err));
	result(!s && strstr(err, "/nonexistent/schema.json"), "missing schema file: %s", err);
}

/* The schema is copied: the caller may drop or change its own. */
static void test_copy(void)
{
	json_t *schema = j("{'properties':{'a':{'enum':['x']}},'required':['a']}");
	json_t *doc = j("{'a':'x'}");
	char err[256];
	struct js_schema *s = js_schema_load(schema, err, sizeof(err));

	json_object_clear(schema);
	json_decref(schema);
	result(s && !js_validate(s, doc, err, sizeof(err)), "schema copied at load");
	json_decref(doc);
	js_schema_free(s);
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc > 1)
		root = argv[1];
	for (i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++)
		run_vcase(&vcases[i]);
	test_refused();
	test_loads();
	test_depth();
	test_bench_schema();
	test_copy();
	printf("# %d tests, %d failed\n", tests, failures);
	return failures ? 1 : 0;
}
