// SPDX-License-Identifier: GPL-2.0
/*
 * JSON Schema draft-07 validator over jansson; see jsonschema.h.
 *
 * Loading compiles each subschema once into a js_node (memoized by the
 * json_t it came from, so a $ref shares its target's node and recursive
 * schemas are finite graphs). Validation walks the nodes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <locale.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonschema.h"

enum {
	T_NULL		= 1 << 0,
	T_BOOLEAN	= 1 << 1,
	T_OBJECT	= 1 << 2,
	T_ARRAY		= 1 << 3,
	T_NUMBER	= 1 << 4,
	T_STRING	= 1 << 5,
	T_INTEGER	= 1 << 6,
};

static const char *const type_names[] = {
	"null", "boolean", "object", "array", "number", "string", "integer",
};

#define NTYPES	(sizeof(type_names) / sizeof(type_names[0]))

struct js_node;

struct js_list {
	struct js_node **v;
	size_t n;
};

struct js_regex {
	regex_t re;
	const char *src;
};

struct js_prop {
	const char *name;
	size_t len;
	struct js_node *node;
};

struct js_pprop {
	struct js_regex *re;
	struct js_node *node;
};

struct js_dep {
	const char *name;
	size_t len;
	const json_t *required;	/* array of names, or NULL for a schema */
	struct js_node *node;
};

struct js_node {
	const json_t *src;
	char *path;		/* where in the schema, for load errors */
	int mark;		/* cycle search: 1 on the path, 2 done */
	bool is_false;
	bool is_ref;
	struct js_node *ref;

	unsigned int types;	/* 0: any */
	const json_t *enum_vals;
	const json_t *const_val;

	const json_t *minimum, *maximum, *ex_minimum, *ex_maximum, *multiple_of;

	long long min_length, max_length;	/* -1: none */
	struct js_regex *pattern;

	struct js_node *items;
	bool has_tuple;
	struct js_list tuple;
	struct js_node *additional_items;
	long long min_items, max_items;
	bool unique_items;
	struct js_node *contains;

	struct js_prop *props;
	size_t nprops;
	const json_t *required;
	struct js_pprop *pprops;
	size_t npprops;
	struct js_node *additional_props;
	long long min_props, max_props;
	struct js_node *property_names;
	struct js_dep *deps;
	size_t ndeps;

	struct js_list all_of, any_of, one_of;
	struct js_node *not_, *if_, *then_, *else_;
};

struct js_schema {
	json_t *root;
	struct js_node *top;
	struct js_node **nodes;
	size_t nnodes, cap;
	locale_t utf8;		/* patterns compile and match in C.UTF-8 */
};

/* Growable string */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

static void sb_putc(struct sbuf *b, char c)
{
	sb_putn(b, &c, 1);
}

static void sb_put_utf8(struct sbuf *b, uint32_t cp)
{
	char u[4];

	if (cp < 0x80) {
		sb_putc(b, (char)cp);
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		sb_putn(b, u, 2);
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		sb_putn(b, u, 3);
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		sb_putn(b, u, 4);
	}
}

/* Decode one code point of valid UTF-8 (jansson's strings are), return its length. */
static size_t utf8_decode(const char *s, uint32_t *cp)
{
	const unsigned char *u = (const unsigned char *)s;

	if (u[0] < 0x80) {
		*cp = u[0];
		return 1;
	}
	if ((u[0] & 0xe0) == 0xc0 && u[1]) {
		*cp = (u[0] & 0x1fu) << 6 | (u[1] & 0x3fu);
		return 2;
	}
	if ((u[0] & 0xf0) == 0xe0 && u[1] && u[2]) {
		*cp = (u[0] & 0x0fu) << 12 | (u[1] & 0x3fu) << 6 | (u[2] & 0x3fu);
		return 3;
	}
	if ((u[0] & 0xf8) == 0xf0 && u[1] && u[2] && u[3]) {
		*cp = (u[0] & 0x07u) << 18 | (u[1] & 0x3fu) << 12 | (u[2] & 0x3fu) << 6 |
		      (u[3] & 0x3fu);
		return 4;
	}
	*cp = 0xfffd;
	return 1;
}

/* Whether a finite double has no fractional part; without libm. */
static bool integral(double d)
{
	if (d >= 4503599627370496.0 || d <= -4503599627370496.0)
		return true;	/* 2^52 and up have no fraction bits */
	return d == (double)(long long)d;
}

/* Loading */

struct loader {
	struct js_schema *s;
	char *err;
	size_t errlen;
	int depth;
};

static bool __attribute__((format(printf, 2, 3))) lerr(struct loader *l, const char *fmt, ...)
{
	va_list ap;

	if (l->err && l->errlen) {
		va_start(ap, fmt);
		vsnprintf(l->err, l->errlen, fmt, ap);
		va_end(ap);
	}
	return false;
}

static const char *disp(const char *path)
{
	return *path ? path : "/";
}

/* A JSON pointer one level down: @base + "/" + escaped @key. */
static char *path_join(const char *base, const char *key, size_t len)
{
	struct sbuf b = { 0 };
	size_t i;

	sb_puts(&b, base);
	sb_putc(&b, '/');
	for (i = 0; i < len; i++) {
		if (key[i] == '~')
			sb_puts(&b, "~0");
		else if (key[i] == '/')
			sb_puts(&b, "~1");
		else if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
			sb_putc(&b, '?');
		else
			sb_putc(&b, key[i]);
	}
	if (b.oom || !b.p) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

static char *path_index(const char *base, size_t i)
{
	char idx[24];

	snprintf(idx, sizeof(idx), "%zu", i);
	return path_join(base, idx, strlen(idx));
}

static void regex_free(struct js_regex *r)
{
	if (!r)
		return;
	regfree(&r->re);
	free(r);
}

static void node_free(struct js_node *n)
{
	size_t i;

	free(n->path);
	regex_free(n->pattern);
	free(n->tuple.v);
	free(n->props);
	for (i = 0; i < n->npprops; i++)
		regex_free(n->pprops[i].re);
	free(n->pprops);
	free(n->deps);
	free(n->all_of.v);
	free(n->any_of.v);
	free(n->one_of.v);
	free(n);
}

static struct js_node *node_new(struct js_schema *s, const json_t *src, const char *path)
{
	struct js_node *n;

	if (s->nnodes == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 32;
		struct js_node **v = realloc(s->nodes, cap * sizeof(*v));

		if (!v)
			return NULL;
		s->nodes = v;
		s->cap = cap;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->path = strdup(path);
	if (!n->path) {
		free(n);
		return NULL;
	}
	n->src = src;
	n->min_length = n->max_length = -1;
	n->min_items = n->max_items = -1;
	n->min_props = n->max_props = -1;
	s->nodes[s->nnodes++] = n;
	return n;
}

static struct js_node *compile(struct loader *l, const json_t *j, const char *path);

/* Compile the subschema @j found at @base/@key. */
static struct js_node *compile_at(struct loader *l, const json_t *j, const char *base,
				  const char *key, size_t len)
{
	char *path = path_join(base, key, len);
	struct js_node *n;

	if (!path) {
		lerr(l, "out of memory");
		return NULL;
	}
	n = compile(l, j, path);
	free(path);
	return n;
}

static bool compile_list(struct loader *l, struct js_list *list, const json_t *val,
			 const char *path, bool nonempty)
{
	size_t i;

	if (!json_is_array(val) || (nonempty && !json_array_size(val)))
		return lerr(l, "%s must be a%s array of schemas", disp(path),
			    nonempty ? " non-empty" : "n");
	list->n = json_array_size(val);
	list->v = calloc(list->n ? list->n : 1, sizeof(*list->v));
	if (!list->v)
		return lerr(l, "out of memory");
	for (i = 0; i < list->n; i++) {
		char *p = path_index(path, i);

		if (!p)
			return lerr(l, "out of memory");
		list->v[i] = compile(l, json_array_get(val, i), p);
		free(p);
		if (!list->v[i])
			return false;
	}
	return true;
}

/* A non-negative integer keyword (minLength, ...); 1.0 counts, as in draft-07. */
static bool get_count(struct loader *l, const json_t *val, const char *path, long long *out)
{
	double d;

	if (json_is_integer(val) && json_integer_value(val) >= 0) {
		*out = json_integer_value(val);
		return true;
	}
	if (json_is_real(val)) {
		d = json_real_value(val);
		if (d >= 0 && integral(d) && d < 9.2e18) {
			*out = (long long)d;
			return true;
		}
	}
	return lerr(l, "%s must be a non-negative integer", disp(path));
}

/* A list of distinct property names (required, dependencies). */
static bool check_names(struct loader *l, const json_t *val, const char *path)
{
	size_t i, k;

	if (!json_is_array(val))
		return lerr(l, "%s must be an array of strings", disp(path));
	for (i = 0; i < json_array_size(val); i++) {
		const json_t *a = json_array_get(val, i);

		if (!json_is_string(a))
			return lerr(l, "%s must be an array of strings", disp(path));
		for (k = 0; k < i; k++)
			if (json_equal(a, json_array_get(val, k)))
				return lerr(l, "%s lists \"%s\" twice", disp(path),
					    json_string_value(a));
	}
	return true;
}

/* Constants (enum, const) are compared recursively: bound their depth. */
static bool shallow(const json_t *v, int depth)
{
	const json_t *e;
	const char *k;
	size_t i;

	if (depth > JS_MAX_DEPTH)
		return false;
	if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			if (!shallow(e, depth + 1))
				return false;
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, e)
			if (!shallow(e, depth + 1))
				return false;
	}
	return true;
}

/* ECMA-262 patterns to POSIX extended regexes */

#define SPACES	" \t\n\v\f\r"					\
		"\xc2\xa0" "\xe1\x9a\x80"			\
		"\xe2\x80\x80" "\xe2\x80\x81" "\xe2\x80\x82"	\
		"\xe2\x80\x83" "\xe2\x80\x84" "\xe2\x80\x85"	\
		"\xe2\x80\x86" "\xe2\x80\x87" "\xe2\x80\x88"	\
		"\xe2\x80\x89" "\xe2\x80\x8a" "\xe2\x80\xa8"	\
		"\xe2\x80\xa9" "\xe2\x80\xaf" "\xe2\x81\x9f"	\
		"\xe3\x80\x80" "\xef\xbb\xbf"
/* ECMA-262's "." excludes the line terminators */
#define DOT	"[^\n\r\xe2\x80\xa8\xe2\x80\xa9]"

struct rx {
	const char *p;		/* next character of the pattern */
	struct sbuf out;
	const char *why;	/* why the pattern is refused */
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool hexn(struct rx *r, int n, uint32_t *cp)
{
	int i, v;

	*cp = 0;
	for (i = 0; i < n; i++) {
		v = hexval(r->p[i]);
		if (v < 0) {
			r->why = "bad \\x or \\u escape";
			return false;
		}
		*cp = *cp << 4 | (uint32_t)v;
	}
	r->p += n;
	return true;
}

/*
 * An escape after the backslash, as one code point (*cp) or, for a class
 * escape, its letter (*cls). Used inside and outside classes.
 */
static bool rx_escape(struct rx *r, uint32_t *cp, char *cls, bool in_class)
{
	char c = *r->p;

	*cls = 0;
	if (!c) {
		r->why = "trailing backslash";
		return false;
	}
	r->p++;
	switch (c) {
	case 'd': case 'D': case 'w': case 'W': case 's': case 'S':
		*cls = c;
		return true;
	case 't': *cp = '\t'; return true;
	case 'n': *cp = '\n'; return true;
	case 'r': *cp = '\r'; return true;
	case 'f': *cp = '\f'; return true;
	case 'v': *cp = '\v'; return true;
	case 'x':
		if (!hexn(r, 2, cp))
			return false;
		if (!*cp) {
			r->why = "\\x00";
			return false;
		}
		return true;
	case 'u':
		if (!hexn(r, 4, cp))
			return false;
		if (!*cp || (*cp >= 0xd800 && *cp <= 0xdfff)) {
			r->why = "\\u of NUL or a surrogate";
			return false;
		}
		return true;
	case 'b':
		if (in_class) {
			*cp = '\b';
			return true;
		}
		r->why = "word boundaries (\\b, \\B)";
		return false;
	case 'B':
		r->why = "word boundaries (\\b, \\B)";
		return false;
	}
	if (c >= '0' && c <= '9') {
		r->why = "backreferences and \\0";
		return false;
	}
	if (strchr("^$\\.*+?()[]{}|/-", c)) {
		*cp = (unsigned char)c;
		return true;
	}
	r->why = "an unknown escape";
	return false;
}

/* A code point outside a class, as a literal. */
static void rx_literal(struct rx *r, uint32_t cp)
{
	if (cp < 0x80 && strchr(".[]()*+?{}|^$\\", (int)cp))
		sb_putc(&r->out, '\\');
	sb_put_utf8(&r->out, cp);
}

static void rx_class_escape(struct rx *r, char cls)
{
	switch (cls) {
	case 'd': sb_puts(&r->out, "[0-9]"); break;
	case 'D': sb_puts(&r->out, "[^0-9]"); break;
	case 'w': sb_puts(&r->out, "[A-Za-z0-9_]"); break;
	case 'W': sb_puts(&r->out, "[^A-Za-z0-9_]"); break;
	case 's': sb_puts(&r->out, "[" SPACES "]"); break;
	case 'S': sb_puts(&r->out, "[^" SPACES "]"); break;
	}
}

/* A bracket expression's members; the ones POSIX places specially are flags. */
struct rx_class {
	struct sbuf body;
	bool rbracket, caret, dash, lbracket;
};

static void cls_add(struct rx_class *k, uint32_t cp)
{
	switch (cp) {
	case ']': k->rbracket = true; break;
	case '^': k->caret = true; break;
	case '-': k->dash = true; break;
	case '[': k->lbracket = true; break;
	default: sb_put_utf8(&k->body, cp);
	}
}

/* Translate [...] (r->p just past the '['). */
static bool rx_class(struct rx *r)
{
	struct rx_class k = { 0 };
	bool neg = false, any = false, ok = false;
	uint32_t lo, hi;
	char cls, cls2;

	if (*r->p == '^') {
		neg = true;
		r->p++;
	}
	if (*r->p == ']') {
		r->why = "empty classes [] and [^]";
		goto out;
	}
	while (*r->p != ']') {
		if (!*r->p) {
			r->why = "an unterminated class";
			goto out;
		}
		if (*r->p == '\\') {
			r->p++;
			if (!rx_escape(r, &lo, &cls, true))
				goto out;
		} else {
			cls = 0;
			r->p += utf8_decode(r->p, &lo);
		}
		any = true;
		if (cls) {
			if (*r->p == '-' && r->p[1] != ']') {
				r->why = "a range from a class escape";
				goto out;
			}
			switch (cls) {
			case 'd':
				sb_puts(&k.body, "0-9");
				break;
			case 'w':
				sb_puts(&k.body, "A-Za-z0-9_");
				break;
			case 's':
				sb_puts(&k.body, SPACES);
				break;
			default:
				r->why = "\\D, \\W or \\S inside a class";
				goto out;
			}
			continue;
		}
		if (*r->p != '-' || r->p[1] == ']') {
			cls_add(&k, lo);
			continue;
		}
		r->p++;
		if (*r->p == '\\') {
			r->p++;
			if (!rx_escape(r, &hi, &cls2, true))
				goto out;
			if (cls2) {
				r->why = "a range to a class escape";
				goto out;
			}
		} else {
			r->p += utf8_decode(r->p, &hi);
		}
		if (lo > hi) {
			r->why = "a range out of order";
			goto out;
		}
		if (hi >= 0x80) {
			r->why = "a range over non-ASCII characters";
			goto out;
		}
		if (strchr("]^-[", (int)lo) || strchr("]^-[", (int)hi)) {
			r->why = "a range from or to ] ^ - [";
			goto out;
		}
		sb_put_utf8(&k.body, lo);
		sb_putc(&k.body, '-');
		sb_put_utf8(&k.body, hi);
	}
	r->p++;
	if (!any)
		goto out;
	/* A class of just '^' (and maybe '-'): POSIX has no "[^]" */
	if (!neg && k.caret && !k.rbracket && !k.body.len && !k.lbracket) {
		sb_puts(&r->out, k.dash ? "[-^]" : "\\^");
		ok = true;
		goto out;
	}
	/* ']' first, '[' late (not before ':', '.' or '='), '-' last */
	sb_puts(&r->out, neg ? "[^" : "[");
	if (k.rbracket)
		sb_putc(&r->out, ']');
	if (k.body.len)
		sb_putn(&r->out, k.body.p, k.body.len);
	if (k.lbracket)
		sb_putc(&r->out, '[');
	if (k.caret)
		sb_putc(&r->out, '^');
	if (k.dash)
		sb_putc(&r->out, '-');
	sb_putc(&r->out, ']');
	ok = !k.body.oom;
out:
	free(k.body.p);
	return ok;
}

static bool rx_number(struct rx *r, long *v)
{
	char *end;

	if (*r->p < '0' || *r->p > '9')
		return false;
	*v = strtol(r->p, &end, 10);
	r->p = end;
	return true;
}

/* {m}, {m,}, {m,n} (r->p at the '{') */
static bool rx_braces(struct rx *r)
{
	long m, n = -1;
	const char *start = r->p;

	r->p++;
	if (!rx_number(r, &m))
		goto bad;
	if (*r->p == ',') {
		r->p++;
		if (*r->p != '}' && !rx_number(r, &n))
			goto bad;
	} else {
		n = m;
	}
	if (*r->p != '}')
		goto bad;
	r->p++;
	if (m > RE_DUP_MAX || n > RE_DUP_MAX || (n >= 0 && n < m)) {
		r->why = "a {m,n} quantifier out of range";
		return false;
	}
	sb_putn(&r->out, start, (size_t)(r->p - start));
	return true;
bad:
	r->why = "a '{' that is not a quantifier";
	return false;
}

static bool rx_translate(struct rx *r)
{
	bool can_repeat = false;	/* the previous item is an atom */
	int groups = 0;
	uint32_t cp;
	char cls;

	while (*r->p) {
		char c = *r->p;

		switch (c) {
		case '^':
		case '$':
		case '|':
			sb_putc(&r->out, c);
			r->p++;
			can_repeat = false;
			break;
		case '.':
			sb_puts(&r->out, DOT);
			r->p++;
			can_repeat = true;
			break;
		case '(':
			r->p++;
			if (*r->p == '?') {
				if (r->p[1] != ':') {
					r->why = "lookarounds and named groups";
					return false;
				}
				r->p += 2;
			}
			sb_putc(&r->out, '(');
			groups++;
			can_repeat = false;
			break;
		case ')':
			if (!groups) {
				r->why = "an unmatched ')'";
				return false;
			}
			sb_putc(&r->out, ')');
			r->p++;
			groups--;
			can_repeat = true;
			break;
		case '*':
		case '+':
		case '?':
		case '{':
			if (!can_repeat) {
				r->why = "a quantifier with nothing to repeat";
				return false;
			}
			if (c == '{') {
				if (!rx_braces(r))
					return false;
			} else {
				sb_putc(&r->out, c);
				r->p++;
			}
			/* lazy or greedy: the same to a match without submatches */
			if (*r->p == '?')
				r->p++;
			can_repeat = false;
			break;
		case '[':
			r->p++;
			if (!rx_class(r))
				return false;
			can_repeat = true;
			break;
		case '\\':
			r->p++;
			if (!rx_escape(r, &cp, &cls, false))
				return false;
			if (cls)
				rx_class_escape(r, cls);
			else
				rx_literal(r, cp);
			can_repeat = true;
			break;
		default:
			r->p += utf8_decode(r->p, &cp);
			rx_literal(r, cp);
			can_repeat = true;
		}
	}
	if (groups) {
		r->why = "an unmatched '('";
		return false;
	}
	return !r->out.oom;
}

static bool need_utf8(struct loader *l, const char *path)
{
	if (l->s->utf8)
		return true;
	l->s->utf8 = newlocale(LC_CTYPE_MASK | LC_COLLATE_MASK, "C.UTF-8", (locale_t)0);
	if (!l->s->utf8)
		l->s->utf8 = newlocale(LC_CTYPE_MASK | LC_COLLATE_MASK, "C.utf8", (locale_t)0);
	if (!l->s->utf8)
		return lerr(l, "pattern at %s: the C.UTF-8 locale is missing", disp(path));
	return true;
}

static struct js_regex *regex_compile(struct loader *l, const json_t *val, const char *path)
{
	struct rx r = { 0 };
	struct js_regex *re;
	locale_t old;
	int rc;

	if (!json_is_string(val)) {
		lerr(l, "%s must be a string", disp(path));
		return NULL;
	}
	if (strlen(json_string_value(val)) != json_string_length(val)) {
		lerr(l, "pattern at %s contains NUL", disp(path));
		return NULL;
	}
	if (!need_utf8(l, path))
		return NULL;
	r.p = json_string_value(val);
	if (!rx_translate(&r)) {
		if (r.why)
			lerr(l, "pattern \"%s\" at %s: %s unsupported", json_string_value(val),
			     disp(path), r.why);
		else
			lerr(l, "out of memory");
		free(r.out.p);
		return NULL;
	}
	re = calloc(1, sizeof(*re));
	if (!re) {
		free(r.out.p);
		lerr(l, "out of memory");
		return NULL;
	}
	re->src = json_string_value(val);
	old = uselocale(l->s->utf8);
	rc = regcomp(&re->re, r.out.p ? r.out.p : "", REG_EXTENDED | REG_NOSUB);
	uselocale(old);
	free(r.out.p);
	if (rc) {
		char msg[128];

		regerror(rc, &re->re, msg, sizeof(msg));
		lerr(l, "pattern \"%s\" at %s: %s", re->src, disp(path), msg);
		free(re);
		return NULL;
	}
	return re;
}

/* Keywords */

typedef bool (*kw_fn)(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		      const char *path);

static bool kw_schema(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		      const char *path)
{
	const char *v = json_string_value(val);

	if (v && (!strcmp(v, "http://json-schema.org/draft-07/schema#") ||
		  !strcmp(v, "http://json-schema.org/draft-07/schema")))
		return true;
	return lerr(l, "unsupported $schema at %s: only draft-07 is implemented", disp(path));
}

static bool kw_id(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		  const char *path)
{
	/* a nested $id would change what the $refs below it resolve against */
	if (n->src != l->s->root)
		return lerr(l, "unsupported $id in a subschema at %s", disp(path));
	if (!json_is_string(val))
		return lerr(l, "%s must be a string", disp(path));
	return true;
}

static bool kw_string(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		      const char *path)
{
	return json_is_string(val) || lerr(l, "%s must be a string", disp(path));
}

static bool kw_any(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		   const char *path)
{
	if (!strcmp(kw, "examples") && !json_is_array(val))
		return lerr(l, "%s must be an array", disp(path));
	if ((!strcmp(kw, "readOnly") || !strcmp(kw, "writeOnly")) && !json_is_boolean(val))
		return lerr(l, "%s must be a boolean", disp(path));
	return true;
}

static bool kw_defs(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		    const char *path)
{
	const char *k;
	json_t *v;
	size_t len;

	if (!json_is_object(val))
		return lerr(l, "%s must be an object", disp(path));
	json_object_keylen_foreach((json_t *)val, k, len, v)
		if (!compile_at(l, v, path, k, len))
			return false;
	return true;
}

/* Resolve a local $ref: "#" or "#/json/pointer", percent-decoded first as a URI fragment. */
static const json_t *resolve(struct loader *l, const char *ref, const char *path)
{
	const json_t *cur = l->s->root;
	struct sbuf frag = { 0 };
	const char *p;
	char *seg, *end;
	int hi, lo;

	if (ref[0] != '#') {
		lerr(l, "unsupported $ref \"%s\" at %s: only local refs (\"#/...\")", ref,
		     disp(path));
		return NULL;
	}
	for (p = ref + 1; *p; p++) {
		if (*p == '%' && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0 &&
		    (hi || lo)) {
			sb_putc(&frag, (char)(hi << 4 | lo));
			p += 2;
		} else {
			sb_putc(&frag, *p);
		}
	}
	if (frag.oom) {
		lerr(l, "out of memory");
		goto out_free;
	}
	if (!frag.len)
		goto out_free;
	if (frag.p[0] != '/')
		goto bad;
	for (seg = frag.p + 1; cur; seg = end + 1) {
		char *w, *r;
		bool last;

		end = strchr(seg, '/');
		last = !end;
		if (last)
			end = seg + strlen(seg);
		/* unescape ~1 then ~0, in place */
		for (r = w = seg; r < end; r++) {
			if (*r == '~') {
				if (r[1] != '0' && r[1] != '1')
					goto bad;
				*w++ = r[1] == '1' ? '/' : '~';
				r++;
			} else {
				*w++ = *r;
			}
		}
		if (json_is_object(cur)) {
			cur = json_object_getn(cur, seg, (size_t)(w - seg));
		} else if (json_is_array(cur)) {
			size_t i = 0;

			if (w == seg || (*seg == '0' && w - seg > 1))
				goto bad;
			for (r = seg; r < w; r++) {
				if (*r < '0' || *r > '9' || i > SIZE_MAX / 16)
					goto bad;
				i = i * 10 + (size_t)(*r - '0');
			}
			cur = json_array_get(cur, i);
		} else {
			cur = NULL;
		}
		if (last)
			break;
	}
	if (!cur)
		goto bad;
out_free:
	free(frag.p);
	return frag.oom ? NULL : cur;
bad:
	free(frag.p);
	lerr(l, "unresolvable $ref \"%s\" at %s", ref, disp(path));
	return NULL;
}

static bool kw_ref(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		   const char *path)
{
	const json_t *target;

	if (!json_is_string(val))
		return lerr(l, "%s must be a string", disp(path));
	if (strlen(json_string_value(val)) != json_string_length(val))
		return lerr(l, "%s contains NUL", disp(path));
	target = resolve(l, json_string_value(val), path);
	if (!target)
		return false;
	n->is_ref = true;
	/* errors inside the target name where it is, not where it is used */
	n->ref = compile(l, target, json_string_value(val) + 1);
	return n->ref != NULL;
}

static bool kw_type(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		    const char *path)
{
	size_t i, t, count = json_is_array(val) ? json_array_size(val) : 1;

	if (!json_is_string(val) && !(json_is_array(val) && count))
		return lerr(l, "%s must be a type name or a non-empty array of them", disp(path));
	for (i = 0; i < count; i++) {
		const json_t *e = json_is_array(val) ? json_array_get(val, i) : val;
		const char *name = json_string_value(e);

		for (t = 0; name && t < NTYPES; t++)
			if (!strcmp(name, type_names[t]))
				break;
		if (!name || t == NTYPES)
			return lerr(l, "%s: unknown type %s", disp(path),
				    name ? name : "(not a string)");
		if (n->types & 1u << t)
			return lerr(l, "%s: type %s listed twice", disp(path), name);
		n->types |= 1u << t;
	}
	return true;
}

static bool kw_enum(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		    const char *path)
{
	if (!json_is_array(val))
		return lerr(l, "%s must be an array", disp(path));
	if (!shallow(val, 0))
		return lerr(l, "%s nested deeper than %d levels", disp(path), JS_MAX_DEPTH);
	n->enum_vals = val;
	return true;
}

static bool kw_const(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		     const char *path)
{
	if (!shallow(val, 1))
		return lerr(l, "%s nested deeper than %d levels", disp(path), JS_MAX_DEPTH);
	n->const_val = val;
	return true;
}

static bool kw_number(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		      const char *path)
{
	if (!json_is_number(val))
		return lerr(l, "%s must be a number", disp(path));
	if (!strcmp(kw, "minimum"))
		n->minimum = val;
	else if (!strcmp(kw, "maximum"))
		n->maximum = val;
	else if (!strcmp(kw, "exclusiveMinimum"))
		n->ex_minimum = val;
	else if (!strcmp(kw, "exclusiveMaximum"))
		n->ex_maximum = val;
	else if (json_number_value(val) > 0)
		n->multiple_of = val;
	else
		return lerr(l, "%s must be greater than 0", disp(path));
	return true;
}

static bool kw_count(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		     const char *path)
{
	long long *dst;

	if (!strcmp(kw, "minLength"))
		dst = &n->min_length;
	else if (!strcmp(kw, "maxLength"))
		dst = &n->max_length;
	else if (!strcmp(kw, "minItems"))
		dst = &n->min_items;
	else if (!strcmp(kw, "maxItems"))
		dst = &n->max_items;
	else if (!strcmp(kw, "minProperties"))
		dst = &n->min_props;
	else
		dst = &n->max_props;
	return get_count(l, val, path, dst);
}

static bool kw_pattern(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		       const char *path)
{
	n->pattern = regex_compile(l, val, path);
	return n->pattern != NULL;
}

static bool kw_format(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		      const char *path)
{
	/* an annotation only: draft-07 validators do not assert it by default */
	return kw_string(l, n, kw, val, path);
}

static bool kw_items(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		     const char *path)
{
	if (json_is_array(val)) {
		n->has_tuple = true;
		return compile_list(l, &n->tuple, val, path, false);
	}
	n->items = compile(l, val, path);
	return n->items != NULL;
}

static bool kw_unique(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		      const char *path)
{
	if (!json_is_boolean(val))
		return lerr(l, "%s must be a boolean", disp(path));
	n->unique_items = json_is_true(val);
	return true;
}

/* The keywords whose value is one schema. */
static bool kw_sub(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
		   const char *path)
{
	struct js_node *sub = compile(l, val, path);

	if (!sub)
		return false;
	if (!strcmp(kw, "additionalItems"))
		n->additional_items = sub;
	else if (!strcmp(kw, "contains"))
		n->contains = sub;
	else if (!strcmp(kw, "additionalProperties"))
		n->additional_props = sub;
	else if (!strcmp(kw, "propertyNames"))
		n->property_names = sub;
	else if (!strcmp(kw, "not"))
		n->not_ = sub;
	else if (!strcmp(kw, "if"))
		n->if_ = sub;
	else if (!strcmp(kw, "then"))
		n->then_ = sub;
	else
		n->else_ = sub;
	return true;
}

static bool kw_properties(struct loader *l, struct js_node *n, const char *kw,
			  const json_t *val, const char *path)
{
	const char *k;
	json_t *v;
	size_t len, i = 0;

	if (!json_is_object(val))
		return lerr(l, "%s must be an object", disp(path));
	n->props = calloc(json_object_size(val) + 1, sizeof(*n->props));
	if (!n->props)
		return lerr(l, "out of memory");
	json_object_keylen_foreach((json_t *)val, k, len, v) {
		n->props[i].name = k;
		n->props[i].len = len;
		n->props[i].node = compile_at(l, v, path, k, len);
		if (!n->props[i++].node)
			return false;
		n->nprops = i;
	}
	return true;
}

static bool kw_pattern_props(struct loader *l, struct js_node *n, const char *kw,
			     const json_t *val, const char *path)
{
	const char *k;
	json_t *v;
	size_t len;

	if (!json_is_object(val))
		return lerr(l, "%s must be an object", disp(path));
	n->pprops = calloc(json_object_size(val) + 1, sizeof(*n->pprops));
	if (!n->pprops)
		return lerr(l, "out of memory");
	json_object_keylen_foreach((json_t *)val, k, len, v) {
		struct js_pprop *pp = &n->pprops[n->npprops];
		json_t *key = json_stringn(k, len);

		if (!key)
			return lerr(l, "out of memory");
		/* the key of the schema's own copy outlives this string */
		pp->re = regex_compile(l, key, path);
		json_decref(key);
		if (!pp->re)
			return false;
		pp->re->src = k;
		n->npprops++;
		pp->node = compile_at(l, v, path, k, len);
		if (!pp->node)
			return false;
	}
	return true;
}

static bool kw_required(struct loader *l, struct js_node *n, const char *kw, const json_t *val,
			const char *path)
{
	if (!check_names(l, val, path))
		return false;
	n->required = val;
	return true;
}

static bool kw_dependencies(struct loader *l, struct js_node *n, const char *kw,
			    const json_t *val, const char *path)
{
	const char *k;
	json_t *v;
	size_t len;

	if (!json_is_object(val))
		return lerr(l, "%s must be an object", disp(path));
	n->deps = calloc(json_object_size(val) + 1, sizeof(*n->deps));
	if (!n->deps)
		return lerr(l, "out of memory");
	json_object_keylen_foreach((json_t *)val, k, len, v) {
		struct js_dep *d = &n->deps[n->ndeps++];

		d->name = k;
		d->len = len;
		if (json_is_array(v)) {
			char *p = path_join(path, k, len);
			bool ok = p && check_names(l, v, p);

			free(p);
			if (!ok)
				return p ? false : lerr(l, "out of memory");
			d->required = v;
		} else {
			d->node = compile_at(l, v, path, k, len);
			if (!d->node)
				return false;
		}
	}
	return true;
}

static bool kw_combinator(struct loader *l, struct js_node *n, const char *kw,
			  const json_t *val, const char *path)
{
	struct js_list *list = !strcmp(kw, "allOf") ? &n->all_of :
			       !strcmp(kw, "anyOf") ? &n->any_of : &n->one_of;

	return compile_list(l, list, val, path, true);
}

static const struct keyword {
	const char *name;
	kw_fn fn;
	bool annotation;	/* allowed beside a $ref, which draft-07 says to ignore */
} keywords[] = {
	{ "$schema",		kw_schema,	true },
	{ "$id",		kw_id,		true },
	{ "$comment",		kw_string,	true },
	{ "title",		kw_string,	true },
	{ "description",	kw_string,	true },
	{ "default",		kw_any,		true },
	{ "examples",		kw_any,		true },
	{ "readOnly",		kw_any,		true },
	{ "writeOnly",		kw_any,		true },
	{ "definitions",	kw_defs,	true },
	{ "$defs",		kw_defs,	true },
	{ "format",		kw_format,	true },
	{ "$ref",		kw_ref,		true },
	{ "type",		kw_type, false },
	{ "enum",		kw_enum, false },
	{ "const",		kw_const, false },
	{ "minimum",		kw_number, false },
	{ "maximum",		kw_number, false },
	{ "exclusiveMinimum",	kw_number, false },
	{ "exclusiveMaximum",	kw_number, false },
	{ "multipleOf",		kw_number, false },
	{ "minLength",		kw_count, false },
	{ "maxLength",		kw_count, false },
	{ "pattern",		kw_pattern, false },
	{ "items",		kw_items, false },
	{ "additionalItems",	kw_sub, false },
	{ "minItems",		kw_count, false },
	{ "maxItems",		kw_count, false },
	{ "uniqueItems",	kw_unique, false },
	{ "contains",		kw_sub, false },
	{ "properties",		kw_properties, false },
	{ "patternProperties",	kw_pattern_props, false },
	{ "additionalProperties", kw_sub, false },
	{ "required",		kw_required, false },
	{ "minProperties",	kw_count, false },
	{ "maxProperties",	kw_count, false },
	{ "propertyNames",	kw_sub, false },
	{ "dependencies",	kw_dependencies, false },
	{ "allOf",		kw_combinator, false },
	{ "anyOf",		kw_combinator, false },
	{ "oneOf",		kw_combinator, false },
	{ "not",		kw_sub, false },
	{ "if",			kw_sub, false },
	{ "then",		kw_sub, false },
	{ "else",		kw_sub, false },
};

static const struct keyword *keyword(const char *name, size_t len)
{
	size_t i;

	if (strlen(name) != len)
		return NULL;
	for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
		if (!strcmp(name, keywords[i].name))
			return &keywords[i];
	return NULL;
}

static bool compile_keywords(struct loader *l, struct js_node *n, const json_t *j)
{
	bool has_ref = json_object_get(j, "$ref") != NULL;
	const struct keyword *kw;
	const char *k;
	json_t *v;
	size_t len;

	json_object_keylen_foreach((json_t *)j, k, len, v) {
		char *path;
		bool ok;

		kw = keyword(k, len);
		if (!kw)
			return lerr(l, "unsupported keyword '%s' at %s", k, disp(n->path));
		if (has_ref && !kw->annotation)
			return lerr(l, "keyword '%s' beside $ref at %s: draft-07 ignores it", k,
				    disp(n->path));
		path = path_join(n->path, k, len);
		if (!path)
			return lerr(l, "out of memory");
		ok = kw->fn(l, n, kw->name, v, path);
		free(path);
		if (!ok)
			return false;
	}
	return true;
}

static struct js_node *compile(struct loader *l, const json_t *j, const char *path)
{
	struct js_node *n;
	size_t i;
	bool ok;

	for (i = 0; i < l->s->nnodes; i++)
		if (l->s->nodes[i]->src == j)
			return l->s->nodes[i];
	if (l->depth >= JS_MAX_DEPTH) {
		lerr(l, "schema nested deeper than %d levels at %s", JS_MAX_DEPTH, disp(path));
		return NULL;
	}
	n = node_new(l->s, j, path);
	if (!n) {
		lerr(l, "out of memory");
		return NULL;
	}
	if (json_is_boolean(j)) {
		n->is_false = json_is_false(j);
		return n;
	}
	if (!json_is_object(j)) {
		lerr(l, "%s: a schema must be an object or a boolean", disp(path));
		return NULL;
	}
	l->depth++;
	ok = compile_keywords(l, n, j);
	l->depth--;
	return ok ? n : NULL;
}

/*
 * A cycle through the keywords that apply to the same instance ($ref, allOf,
 * ..., dependencies) would never end: refuse it, and chains too long to
 * validate within JS_MAX_DEPTH.
 */
static bool acyclic(struct loader *l, struct js_node *n, int depth);

static bool acyclic_list(struct loader *l, const struct js_list *list, int depth)
{
	size_t i;

	for (i = 0; i < list->n; i++)
		if (!acyclic(l, list->v[i], depth))
			return false;
	return true;
}

static bool acyclic(struct loader *l, struct js_node *n, int depth)
{
	/* then and else apply only after an if */
	struct js_node *one[] = {
		n->ref, n->not_, n->if_, n->if_ ? n->then_ : NULL, n->if_ ? n->else_ : NULL,
	};
	size_t i;

	if (n->mark == 2)
		return true;
	if (n->mark == 1)
		return lerr(l, "$ref cycle that consumes no input at %s", disp(n->path));
	if (depth >= JS_MAX_DEPTH)
		return lerr(l, "chain of $ref and combinators longer than %d at %s",
			    JS_MAX_DEPTH, disp(n->path));
	n->mark = 1;
	for (i = 0; i < sizeof(one) / sizeof(one[0]); i++)
		if (one[i] && !acyclic(l, one[i], depth + 1))
			return false;
	if (!acyclic_list(l, &n->all_of, depth + 1) || !acyclic_list(l, &n->any_of, depth + 1) ||
	    !acyclic_list(l, &n->one_of, depth + 1))
		return false;
	for (i = 0; i < n->ndeps; i++)
		if (n->deps[i].node && !acyclic(l, n->deps[i].node, depth + 1))
			return false;
	n->mark = 2;
	return true;
}

void js_schema_free(struct js_schema *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->nnodes; i++)
		node_free(s->nodes[i]);
	free(s->nodes);
	if (s->utf8)
		freelocale(s->utf8);
	json_decref(s->root);
	free(s);
}

struct js_schema *js_schema_load(const json_t *schema, char *err, size_t errlen)
{
	struct loader l = { .err = err, .errlen = errlen };
	struct js_schema *s;
	size_t i;

	if (err && errlen)
		*err = '\0';
	if (!schema) {
		lerr(&l, "no schema");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		lerr(&l, "out of memory");
		return NULL;
	}
	l.s = s;
	/* a copy: nodes point into it, and the caller may change its own */
	s->root = json_deep_copy(schema);
	if (!s->root) {
		lerr(&l, "out of memory");
		goto fail;
	}
	s->top = compile(&l, s->root, "");
	if (!s->top)
		goto fail;
	for (i = 0; i < s->nnodes; i++)
		if (!acyclic(&l, s->nodes[i], 0))
			goto fail;
	return s;
fail:
	js_schema_free(s);
	return NULL;
}

struct js_schema *js_schema_load_file(const char *path, char *err, size_t errlen)
{
	struct js_schema *s;
	json_error_t jerr;
	json_t *j;

	j = json_load_file(path, 0, &jerr);
	if (!j) {
		if (err && errlen)
			snprintf(err, errlen, "%s:%d:%d: %s", path, jerr.line, jerr.column,
				 jerr.text);
		return NULL;
	}
	s = js_schema_load(j, err, errlen);
	json_decref(j);
	return s;
}

/* Validation */

struct seg {
	const char *key;	/* NULL: an array index */
	size_t len;
	size_t idx;
};

struct vctx {
	const struct js_schema *s;
	char *err;
	size_t errlen, used;
	int nerr;
	int quiet;		/* > 0: only whether it is valid (anyOf, not, ...) */
	int depth;
	size_t npath;
	struct seg path[JS_MAX_DEPTH + 2];
};

static bool stop(const struct vctx *c)
{
	return c->quiet || c->nerr >= JS_MAX_ERRORS;
}

/* Append to the message, not splitting a UTF-8 sequence when it is full. */
static void eput(struct vctx *c, const char *s, size_t n)
{
	size_t room;

	if (!c->err || c->used + 1 >= c->errlen)
		return;
	room = c->errlen - 1 - c->used;
	if (n > room) {
		n = room;
		while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(c->err + c->used, s, n);
	c->used += n;
	c->err[c->used] = '\0';
}

static void eput_path(struct vctx *c)
{
	char buf[32];
	size_t i, k;

	if (!c->npath)
		eput(c, "/", 1);
	for (i = 0; i < c->npath; i++) {
		const struct seg *sg = &c->path[i];

		eput(c, "/", 1);
		if (!sg->key) {
			snprintf(buf, sizeof(buf), "%zu", sg->idx);
			eput(c, buf, strlen(buf));
			continue;
		}
		for (k = 0; k < sg->len; k++) {
			char ch = sg->key[k];

			if (ch == '~')
				eput(c, "~0", 2);
			else if (ch == '/')
				eput(c, "~1", 2);
			else if ((unsigned char)ch < 0x20 || ch == 0x7f)
				eput(c, "?", 1);
			else
				eput(c, &ch, 1);
		}
	}
}

static bool __attribute__((format(printf, 2, 3), noinline))
report(struct vctx *c, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (c->quiet)
		return false;
	if (c->nerr++)
		eput(c, "; ", 2);
	eput_path(c);
	eput(c, ": ", 2);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	eput(c, msg, strlen(msg));
	return false;
}

static void push_key(struct vctx *c, const char *key, size_t len)
{
	c->path[c->npath++] = (struct seg){ .key = key, .len = len };
}

static void push_idx(struct vctx *c, size_t idx)
{
	c->path[c->npath++] = (struct seg){ .idx = idx };
}

static void pop(struct vctx *c)
{
	c->npath--;
}

/* A value, short, for messages. */
static void fmt_value(const json_t *v, char *buf, size_t len)
{
	const char *s;
	size_t n, i, o = 0;
	double d;

	switch (json_typeof(v)) {
	case JSON_INTEGER:
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return;
	case JSON_REAL:
		d = json_real_value(v);
		snprintf(buf, len, "%.15g", d);
		if (strtod(buf, NULL) != d)
			snprintf(buf, len, "%.17g", d);
		return;
	case JSON_STRING:
		break;
	case JSON_TRUE:
		snprintf(buf, len, "true");
		return;
	case JSON_FALSE:
		snprintf(buf, len, "false");
		return;
	case JSON_NULL:
		snprintf(buf, len, "null");
		return;
	case JSON_ARRAY:
		snprintf(buf, len, "an array");
		return;
	default:
		snprintf(buf, len, "an object");
		return;
	}
	s = json_string_value(v);
	n = json_string_length(v);
	if (len < 8) {
		snprintf(buf, len, "\"\"");
		return;
	}
	buf[o++] = '"';
	for (i = 0; i < n && o + 6 < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		buf[o++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	/* do not end inside a UTF-8 sequence */
	if (i < n)
		while (o > 1 && ((unsigned char)s[i] & 0xc0) == 0x80) {
			o--;
			i--;
		}
	buf[o++] = '"';
	if (i < n) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
}

static const char *type_of(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	case JSON_NULL: return "null";
	default: return "boolean";
	}
}

static unsigned int type_mask(const json_t *v)
{
	double d;

	switch (json_typeof(v)) {
	case JSON_OBJECT: return T_OBJECT;
	case JSON_ARRAY: return T_ARRAY;
	case JSON_STRING: return T_STRING;
	case JSON_INTEGER: return T_NUMBER | T_INTEGER;
	case JSON_REAL:
		/* draft-07: an integer is a number with a zero fractional part */
		d = json_real_value(v);
		return T_NUMBER | (integral(d) ? T_INTEGER : 0);
	case JSON_NULL: return T_NULL;
	default: return T_BOOLEAN;
	}
}

/* <0, 0, >0; long double holds any json_int_t exactly. */
static int num_cmp(const json_t *a, const json_t *b)
{
	long double x, y;

	if (json_is_integer(a) && json_is_integer(b)) {
		json_int_t i = json_integer_value(a), j = json_integer_value(b);

		return (i > j) - (i < j);
	}
	x = json_is_integer(a) ? (long double)json_integer_value(a) : json_real_value(a);
	y = json_is_integer(b) ? (long double)json_integer_value(b) : json_real_value(b);
	return (x > y) - (x < y);
}

/* JSON Schema equality: numbers by value, true != 1. -1: too deep to tell. */
static int js_equal(const json_t *a, const json_t *b, int depth)
{
	const char *k;
	json_t *v;
	size_t i, len;
	int r;

	if (depth > JS_MAX_DEPTH)
		return -1;
	if (json_is_number(a) && json_is_number(b))
		return num_cmp(a, b) == 0;
	if (json_typeof(a) != json_typeof(b))
		return 0;
	switch (json_typeof(a)) {
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		       !memcmp(json_string_value(a), json_string_value(b),
			       json_string_length(a));
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return 0;
		for (i = 0; i < json_array_size(a); i++) {
			r = js_equal(json_array_get(a, i), json_array_get(b, i), depth + 1);
			if (r != 1)
				return r;
		}
		return 1;
	case JSON_OBJECT:
		if (json_object_size(a) != json_object_size(b))
			return 0;
		json_object_keylen_foreach((json_t *)a, k, len, v) {
			const json_t *w = json_object_getn(b, k, len);

			if (!w)
				return 0;
			r = js_equal(v, w, depth + 1);
			if (r != 1)
				return r;
		}
		return 1;
	default:
		return 1;	/* null, true, false */
	}
}

/* A hash consistent with js_equal, for uniqueItems in O(n log n). */
static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static uint64_t js_hash(const json_t *v, int depth)
{
	uint64_t h = 0, d64;
	const char *k;
	json_t *e;
	size_t i, len;
	double d;

	if (depth > JS_MAX_DEPTH)
		return 0;
	switch (json_typeof(v)) {
	case JSON_INTEGER:
	case JSON_REAL:
		d = json_number_value(v);
		if (d == 0)
			d = 0;	/* -0.0 */
		memcpy(&d64, &d, sizeof(d64));
		return mix(d64 ^ 0x1111);
	case JSON_STRING:
		h = 0xcbf29ce484222325ULL;
		for (i = 0; i < json_string_length(v); i++)
			h = (h ^ (unsigned char)json_string_value(v)[i]) * 0x100000001b3ULL;
		return mix(h);
	case JSON_ARRAY:
		h = 0x2222;
		json_array_foreach(v, i, e)
			h = mix(h * 31 + js_hash(e, depth + 1));
		return h;
	case JSON_OBJECT:
		/* order-independent */
		json_object_keylen_foreach((json_t *)v, k, len, e) {
			uint64_t kh = 0xcbf29ce484222325ULL;

			for (i = 0; i < len; i++)
				kh = (kh ^ (unsigned char)k[i]) * 0x100000001b3ULL;
			h += mix(mix(kh) + js_hash(e, depth + 1));
		}
		return mix(h ^ 0x3333);
	case JSON_TRUE:
		return 0x4444;
	case JSON_FALSE:
		return 0x5555;
	default:
		return 0x6666;
	}
}

struct hashed {
	uint64_t h;
	size_t i;
};

static int cmp_hashed(const void *a, const void *b)
{
	const struct hashed *x = a, *y = b;

	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

static bool __attribute__((noinline)) check_unique(struct vctx *c, const json_t *inst)
{
	size_t n = json_array_size(inst), i, k;
	struct hashed *hs;
	bool ok = true;
	int r = 0;

	if (n < 2)
		return true;
	hs = malloc(n * sizeof(*hs));
	if (!hs)
		return report(c, "out of memory checking uniqueItems");
	for (i = 0; i < n; i++)
		hs[i] = (struct hashed){ js_hash(json_array_get(inst, i), c->depth), i };
	qsort(hs, n, sizeof(*hs), cmp_hashed);
	for (i = 0; i < n && ok; i++)
		for (k = i + 1; k < n && hs[k].h == hs[i].h && ok; k++) {
			r = js_equal(json_array_get(inst, hs[i].i), json_array_get(inst, hs[k].i),
				     c->depth);
			if (r)
				ok = false;
		}
	if (!ok) {
		i--;
		k--;
		if (r < 0)
			report(c, "items nested too deep to check uniqueItems");
		else
			report(c, "items %zu and %zu are equal, uniqueItems", hs[i].i, hs[k].i);
	}
	free(hs);
	return ok;
}

static bool validate(struct vctx *c, const struct js_node *n, const json_t *inst);

#define CHECK(c, ok, expr)				\
	do {						\
		if (!(expr)) {				\
			(ok) = false;			\
			if (stop(c))			\
				return false;		\
		}					\
	} while (0)

static bool __attribute__((noinline)) check_type(struct vctx *c, const struct js_node *n,
						 const json_t *inst)
{
	char want[80] = "";
	size_t t;

	if (n->types & type_mask(inst))
		return true;
	for (t = 0; t < NTYPES; t++)
		if (n->types & 1u << t) {
			if (*want)
				strcat(want, " or ");
			strcat(want, type_names[t]);
		}
	return report(c, "expected %s, got %s", want, type_of(inst));
}

static bool __attribute__((noinline)) check_enum(struct vctx *c, const struct js_node *n,
						 const json_t *inst)
{
	char got[64], one[64], list[160] = "";
	const json_t *e;
	size_t i, used = 0;

	json_array_foreach(n->enum_vals, i, e)
		if (js_equal(inst, e, c->depth) == 1)
			return true;
	if (c->quiet)
		return false;
	fmt_value(inst, got, sizeof(got));
	json_array_foreach(n->enum_vals, i, e) {
		fmt_value(e, one, sizeof(one));
		if (used + strlen(one) + 8 >= sizeof(list)) {
			strcpy(list + used, ", ...");
			break;
		}
		used += (size_t)sprintf(list + used, "%s%s", i ? ", " : "", one);
	}
	return report(c, "%s is not one of %s", got, list);
}

static bool __attribute__((noinline)) check_const(struct vctx *c, const struct js_node *n,
						  const json_t *inst)
{
	char got[64], want[64];

	if (js_equal(inst, n->const_val, c->depth) == 1)
		return true;
	if (c->quiet)
		return false;
	fmt_value(inst, got, sizeof(got));
	fmt_value(n->const_val, want, sizeof(want));
	return report(c, "expected %s, got %s", want, got);
}

static bool num_fail(struct vctx *c, const json_t *inst, const char *what, const json_t *lim)
{
	char a[64], b[64];

	if (c->quiet)
		return false;
	fmt_value(inst, a, sizeof(a));
	fmt_value(lim, b, sizeof(b));
	return report(c, "%s %s %s", a, what, b);
}

/* Whether the integral double @a, |a| >= 2^63, is a multiple of @b, exactly. */
static bool big_multiple(double a, uint64_t b)
{
	uint64_t bits, r;
	int k;

	/* a = mantissa * 2^k */
	memcpy(&bits, &a, sizeof(bits));
	r = ((bits & ((1ULL << 52) - 1)) | 1ULL << 52) % b;
	for (k = (int)(bits >> 52 & 0x7ff) - 1075; k > 0; k--)
		r = r * 2 % b;	/* r < b < 2^63 */
	return !r;
}

/* As Python's jsonschema: exact for an integer divisor, by quotient otherwise. */
static bool multiple(const json_t *inst, const json_t *of)
{
	double a = json_number_value(inst), q;
	json_int_t b;

	if (json_is_integer(of)) {
		b = json_integer_value(of);
		if (json_is_integer(inst))
			return json_integer_value(inst) % b == 0;
		if (!integral(a))
			return false;
		if (a > -9.2e18 && a < 9.2e18)
			return (long long)a % b == 0;
		return big_multiple(a, (uint64_t)b);
	}
	q = a / json_number_value(of);
	return isfinite(q) && integral(q);
}

static bool __attribute__((noinline)) check_number(struct vctx *c, const struct js_node *n,
						   const json_t *inst)
{
	bool ok = true;

	if (n->minimum && num_cmp(inst, n->minimum) < 0)
		CHECK(c, ok, num_fail(c, inst, "is less than minimum", n->minimum));
	if (n->ex_minimum && num_cmp(inst, n->ex_minimum) <= 0)
		CHECK(c, ok, num_fail(c, inst, "is not greater than exclusiveMinimum",
				      n->ex_minimum));
	if (n->maximum && num_cmp(inst, n->maximum) > 0)
		CHECK(c, ok, num_fail(c, inst, "is greater than maximum", n->maximum));
	if (n->ex_maximum && num_cmp(inst, n->ex_maximum) >= 0)
		CHECK(c, ok, num_fail(c, inst, "is not less than exclusiveMaximum",
				      n->ex_maximum));
	if (n->multiple_of && !multiple(inst, n->multiple_of))
		CHECK(c, ok, num_fail(c, inst, "is not a multiple of", n->multiple_of));
	return ok;
}

/* 1: match, 0: none, -1: regexec failed (out of memory) */
static int rx_match(const struct vctx *c, const struct js_regex *re, const char *s, size_t len)
{
	regmatch_t m = { .rm_so = 0, .rm_eo = (regoff_t)len };
	locale_t old;
	int rc;

	/* REG_STARTEND: the length, not a NUL, ends the string */
	old = uselocale(c->s->utf8);
	rc = regexec(&re->re, s, 1, &m, REG_STARTEND);
	uselocale(old);
	return rc == 0 ? 1 : rc == REG_NOMATCH ? 0 : -1;
}

static bool __attribute__((noinline)) check_string(struct vctx *c, const struct js_node *n,
						   const json_t *inst)
{
	const char *s = json_string_value(inst);
	size_t len = json_string_length(inst), i, cps = 0;
	char got[64] = "";
	bool ok = true;
	int m;

	if (n->min_length >= 0 || n->max_length >= 0)
		for (i = 0; i < len; i++)
			cps += ((unsigned char)s[i] & 0xc0) != 0x80;
	if (n->min_length >= 0 && cps < (unsigned long long)n->min_length)
		CHECK(c, ok, report(c, "string of %zu characters is shorter than minLength %lld",
				    cps, n->min_length));
	if (n->max_length >= 0 && cps > (unsigned long long)n->max_length)
		CHECK(c, ok, report(c, "string of %zu characters is longer than maxLength %lld",
				    cps, n->max_length));
	if (n->pattern) {
		m = rx_match(c, n->pattern, s, len);
		if (m < 0) {
			CHECK(c, ok, report(c, "pattern %s could not be matched", n->pattern->src));
		} else if (!m) {
			if (!c->quiet)
				fmt_value(inst, got, sizeof(got));
			CHECK(c, ok, report(c, "%s does not match pattern %s", got,
					    n->pattern->src));
		}
	}
	return ok;
}

static bool check_array(struct vctx *c, const struct js_node *n, const json_t *inst)
{
	size_t size = json_array_size(inst), i;
	const struct js_node *sub;
	bool ok = true, r;

	if (n->min_items >= 0 && size < (unsigned long long)n->min_items)
		CHECK(c, ok, report(c, "array of %zu items is shorter than minItems %lld", size,
				    n->min_items));
	if (n->max_items >= 0 && size > (unsigned long long)n->max_items)
		CHECK(c, ok, report(c, "array of %zu items is longer than maxItems %lld", size,
				    n->max_items));
	if (n->unique_items)
		CHECK(c, ok, check_unique(c, inst));
	for (i = 0; i < size; i++) {
		if (n->has_tuple)
			sub = i < n->tuple.n ? n->tuple.v[i] : n->additional_items;
		else
			sub = n->items;
		if (!sub)
			break;
		push_idx(c, i);
		r = validate(c, sub, json_array_get(inst, i));
		pop(c);
		CHECK(c, ok, r);
	}
	if (n->contains) {
		r = false;
		c->quiet++;
		for (i = 0; i < size && !r; i++) {
			push_idx(c, i);
			r = validate(c, n->contains, json_array_get(inst, i));
			pop(c);
		}
		c->quiet--;
		CHECK(c, ok, r || report(c, "no item matches the contains schema"));
	}
	return ok;
}

static bool check_object(struct vctx *c, const struct js_node *n, const json_t *inst)
{
	size_t size = json_object_size(inst), len, i, k;
	const json_t *name;
	const char *key;
	json_t *v;
	bool ok = true, matched, r;
	int m;

	if (n->required)
		json_array_foreach(n->required, i, name)
			if (!json_object_getn(inst, json_string_value(name),
					      json_string_length(name)))
				CHECK(c, ok, report(c, "missing required property \"%s\"",
						    json_string_value(name)));
	if (n->min_props >= 0 && size < (unsigned long long)n->min_props)
		CHECK(c, ok, report(c, "object of %zu properties has fewer than "
				    "minProperties %lld", size, n->min_props));
	if (n->max_props >= 0 && size > (unsigned long long)n->max_props)
		CHECK(c, ok, report(c, "object of %zu properties has more than "
				    "maxProperties %lld", size, n->max_props));
	json_object_keylen_foreach((json_t *)inst, key, len, v) {
		matched = false;
		push_key(c, key, len);
		for (i = 0; i < n->nprops; i++) {
			if (n->props[i].len != len || memcmp(n->props[i].name, key, len))
				continue;
			matched = true;
			r = validate(c, n->props[i].node, v);
			if (!r && stop(c)) {
				pop(c);
				return false;
			}
			ok &= r;
			break;
		}
		for (i = 0; i < n->npprops; i++) {
			m = rx_match(c, n->pprops[i].re, key, len);
			if (m < 0)
				r = report(c, "pattern %s could not be matched",
					   n->pprops[i].re->src);
			else if (m)
				r = validate(c, n->pprops[i].node, v);
			else
				continue;
			matched = true;
			if (!r && stop(c)) {
				pop(c);
				return false;
			}
			ok &= r;
		}
		if (!matched && n->additional_props) {
			if (n->additional_props->is_false)
				r = report(c, "unexpected property");
			else
				r = validate(c, n->additional_props, v);
			if (!r && stop(c)) {
				pop(c);
				return false;
			}
			ok &= r;
		}
		pop(c);
	}
	if (n->property_names) {
		json_object_keylen_foreach((json_t *)inst, key, len, v) {
			json_t *s = json_stringn(key, len);
			char got[64] = "";

			if (!s)
				return report(c, "out of memory checking propertyNames");
			c->quiet++;
			r = validate(c, n->property_names, s);
			c->quiet--;
			if (!r && !c->quiet)
				fmt_value(s, got, sizeof(got));
			json_decref(s);
			if (!r)
				CHECK(c, ok, report(c, "property name %s does not match "
						    "propertyNames", got));
		}
	}
	for (i = 0; i < n->ndeps; i++) {
		const struct js_dep *d = &n->deps[i];

		if (!json_object_getn(inst, d->name, d->len))
			continue;
		if (d->node) {
			CHECK(c, ok, validate(c, d->node, inst));
			continue;
		}
		json_array_foreach(d->required, k, name)
			if (!json_object_getn(inst, json_string_value(name),
					      json_string_length(name)))
				CHECK(c, ok, report(c, "property \"%s\" requires property \"%s\"",
						    d->name, json_string_value(name)));
	}
	return ok;
}

static bool check_combinators(struct vctx *c, const struct js_node *n, const json_t *inst)
{
	size_t i, first = 0, count = 0;
	bool ok = true, r;

	for (i = 0; i < n->all_of.n; i++)
		CHECK(c, ok, validate(c, n->all_of.v[i], inst));
	if (n->any_of.n) {
		r = false;
		c->quiet++;
		for (i = 0; i < n->any_of.n && !r; i++)
			r = validate(c, n->any_of.v[i], inst);
		c->quiet--;
		CHECK(c, ok, r || report(c, "matches no schema of anyOf"));
	}
	if (n->one_of.n) {
		c->quiet++;
		for (i = 0; i < n->one_of.n && count < 2; i++)
			if (validate(c, n->one_of.v[i], inst) && !count++)
				first = i;
		c->quiet--;
		if (!count)
			CHECK(c, ok, report(c, "matches no schema of oneOf"));
		else if (count > 1)
			CHECK(c, ok, report(c, "matches schemas %zu and %zu of oneOf, not just one",
					    first, i - 1));
	}
	if (n->not_) {
		c->quiet++;
		r = validate(c, n->not_, inst);
		c->quiet--;
		CHECK(c, ok, !r || report(c, "matches the schema of not"));
	}
	if (n->if_) {
		c->quiet++;
		r = validate(c, n->if_, inst);
		c->quiet--;
		if (r && n->then_)
			CHECK(c, ok, validate(c, n->then_, inst));
		else if (!r && n->else_)
			CHECK(c, ok, validate(c, n->else_, inst));
	}
	return ok;
}

static bool validate_keywords(struct vctx *c, const struct js_node *n, const json_t *inst)
{
	bool ok = true;

	if (n->is_ref)
		return validate(c, n->ref, inst);	/* siblings are annotations */
	if (n->types)
		CHECK(c, ok, check_type(c, n, inst));
	if (n->enum_vals)
		CHECK(c, ok, check_enum(c, n, inst));
	if (n->const_val)
		CHECK(c, ok, check_const(c, n, inst));
	switch (json_typeof(inst)) {
	case JSON_INTEGER:
	case JSON_REAL:
		CHECK(c, ok, check_number(c, n, inst));
		break;
	case JSON_STRING:
		CHECK(c, ok, check_string(c, n, inst));
		break;
	case JSON_ARRAY:
		CHECK(c, ok, check_array(c, n, inst));
		break;
	case JSON_OBJECT:
		CHECK(c, ok, check_object(c, n, inst));
		break;
	default:
		break;
	}
	CHECK(c, ok, check_combinators(c, n, inst));
	return ok;
}

static bool validate(struct vctx *c, const struct js_node *n, const json_t *inst)
{
	bool ok;

	if (n->is_false)
		return report(c, "no value is allowed here");
	/* documents come over the network: bound the recursion */
	if (c->depth >= JS_MAX_DEPTH)
		return report(c, "nested deeper than %d levels", JS_MAX_DEPTH);
	c->depth++;
	ok = validate_keywords(c, n, inst);
	c->depth--;
	return ok;
}

int js_validate(const struct js_schema *s, const json_t *doc, char *err, size_t errlen)
{
	struct vctx *c;
	bool ok;

	if (err && errlen)
		*err = '\0';
	if (!s || !doc) {
		if (err && errlen)
			snprintf(err, errlen, "no %s", s ? "document" : "schema");
		return -1;
	}
	/* the path stack is a few KiB: keep it off small thread stacks */
	c = calloc(1, sizeof(*c));
	if (!c) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->s = s;
	c->err = err;
	c->errlen = err ? errlen : 0;
	ok = validate(c, s->top, doc);
	free(c);
	return ok ? 0 : -1;
}
