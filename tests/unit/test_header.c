/*
 * test_header.c - address lists as ENVELOPE shows them (groups, route-addr,
 * comments as names, quoted local parts, missing parts), Content-Type
 * parameters with RFC 2231 continuations, RFC 2047 decoding with charsets
 * and broken encoded words, and the nstring quoting rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/header.h"
#include "mail/imapstruct.h"

/* The list as ENVELOPE text (the writer's own format, so the test reads like the protocol). */
static char *
env(const char *s)
{
	struct mc_address *a = mc_address_parse(s, strlen(s));
	struct mc_buf b;
	mc_buf_init(&b, 1 << 16);
	if (a == NULL)
		mc_buf_adds(&b, "NIL");
	for (struct mc_address *x = a; x; x = x->next) {
		mc_buf_adds(&b, "(");
		mc_imap_nstring(&b, x->name, x->name ? strlen(x->name) : 0);
		mc_buf_adds(&b, " ");
		mc_imap_nstring(&b, x->route, x->route ? strlen(x->route) : 0);
		mc_buf_adds(&b, " ");
		mc_imap_nstring(&b, x->mailbox, x->mailbox ? strlen(x->mailbox) : 0);
		mc_buf_adds(&b, " ");
		mc_imap_nstring(&b, x->domain, x->domain ? strlen(x->domain) : 0);
		mc_buf_adds(&b, ")");
	}
	mc_address_free(a);
	char *r = strdup(b.data ? b.data : "");
	mc_buf_free(&b);
	return r;
}

#define ENV_IS(in, want)                         \
	do {                                     \
		char *got_ = env(in);            \
		assert_string_equal(got_, want); \
		free(got_);                      \
	} while (0)

static void
test_addresses(void **state)
{
	ENV_IS("Alice Example <alice@example.test>", "(\"Alice Example\" NIL \"alice\" \"example.test\")");
	ENV_IS("bob@example.test", "(NIL NIL \"bob\" \"example.test\")");
	ENV_IS("\"Doe, John\" <john@example.test>, x@y", "(\"Doe, John\" NIL \"john\" \"example.test\")(NIL NIL \"x\" \"y\")");
	/* a comment stands in for a missing display name */
	ENV_IS("alice@example.test (Alice Liddell)", "(\"Alice Liddell\" NIL \"alice\" \"example.test\")");
	ENV_IS("Alice (the first) <alice@example.test>", "(\"Alice\" NIL \"alice\" \"example.test\")");
	/* groups, empty groups */
	ENV_IS("group: a@example.test, b@example.test;",
	       "(NIL NIL \"group\" NIL)(NIL NIL \"a\" \"example.test\")(NIL NIL \"b\" \"example.test\")(NIL NIL NIL NIL)");
	ENV_IS("undisclosed-recipients:;", "(NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)");
	/* obsolete route, quoted local part, domain literal */
	ENV_IS("<@relay.test,@r2.test:joe@example.test>", "(NIL \"@relay.test,@r2.test\" \"joe\" \"example.test\")");
	ENV_IS("\"john doe\"@example.test", "(NIL NIL \"john doe\" \"example.test\")");
	ENV_IS("x@[192.0.2.1]", "(NIL NIL \"x\" \"[192.0.2.1]\")");
	/* encoded words stay as written; folding goes */
	ENV_IS("=?UTF-8?B?w4RsaWNl?=\r\n <alice@example.test>", "(\"=?UTF-8?B?w4RsaWNl?=\" NIL \"alice\" \"example.test\")");
	/* broken: no domain, no local part, garbage */
	ENV_IS("bob", "(NIL NIL \"bob\" \"MISSING_DOMAIN\")");
	ENV_IS("<@example.test>", "(NIL \"@example.test\" \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")");
	ENV_IS("", "NIL");
	ENV_IS(" , ,", "NIL");
	ENV_IS("John Q. Public <jqp@example.test>", "(\"John Q. Public\" NIL \"jqp\" \"example.test\")");
	ENV_IS("a@b (((((((((((((((((((((((((((((((((((((((deep", "(NIL NIL \"a\" \"b\")");
	ENV_IS("\"unterminated <a@b>", "(NIL NIL \"unterminated <a@b>\" \"MISSING_DOMAIN\")");
}

static void
test_address_bound(void **state)
{
	size_t n = 3000 * 6;
	char *s = malloc(n + 1);
	for (size_t i = 0; i < 3000; i++)
		memcpy(s + i * 6, "a@b.c,", 6);
	s[n] = '\0';
	struct mc_address *a = mc_address_parse(s, n);
	unsigned k = 0;
	for (struct mc_address *x = a; x; x = x->next)
		k++;
	assert_int_equal(k, MC_HEADER_ADDR_MAX);
	mc_address_free(a);
	free(s);
}

static void
params_are(const char *in, const char *type, const char *sub, const char *const *kv, int n)
{
	char *t, *st;
	struct mc_param *p;
	int got = mc_header_parse_params(in, strlen(in), true, &t, &st, &p);
	assert_int_equal(got, n);
	if (type)
		assert_string_equal(t, type);
	else
		assert_null(t);
	if (sub)
		assert_string_equal(st, sub);
	else
		assert_null(st);
	for (int i = 0; i < n; i++) {
		assert_string_equal(p[i].name, kv[2 * i]);
		assert_string_equal(p[i].value, kv[2 * i + 1]);
	}
	free(t);
	free(st);
	mc_header_params_free(p, got);
}

static void
test_params(void **state)
{
	const char *a[] = { "charset", "us-ascii", "format", "flowed" };
	params_are("text/plain;\r\n\tcharset=\"us-ascii\";\r\n\tformat=flowed", "text", "plain", a, 2);
	const char *b[] = { "name*", "UTF-8''r%C3%A9sum%C3%A9.pdf" };
	params_are("application/pdf;\r\n name*0*=UTF-8''r%C3%A9sum%C3%A9;\r\n name*1=\".pdf\"", "application", "pdf", b,
		   1);
	const char *c[] = { "name", "abc", "x", "1" };
	params_are("a/b; name*1=\"b\"; x=1; name*0=a; name*2=c", "a", "b", c, 2);
	const char *d[] = { "boundary", "b \"q\"" };
	params_are("multipart/mixed (comment) ; boundary=\"b \\\"q\\\"\"", "multipart", "mixed", d, 1);
	params_are("", NULL, NULL, NULL, 0);
	params_are("text", "text", NULL, NULL, 0);
	const char *e[] = { "y", "2" };
	params_are("text/plain; junk; =x; y=2", "text", "plain", e, 1);
	/* a plain segment continuing an encoded one is percent-encoded so the value decodes right */
	const char *f[] = { "n*", "utf-8''a%20b" };
	params_are("x/y; n*0*=utf-8''a; n*1=\" b\"", "x", "y", f, 1);
}

static void
decoded_is(const char *in, const char *want)
{
	struct mc_buf b;
	mc_buf_init(&b, 1 << 16);
	assert_int_equal(mc_header_decode(in, strlen(in), &b), 0);
	assert_string_equal(b.data ? b.data : "", want);
	mc_buf_free(&b);
}

static void
test_encoded_words(void **state)
{
	decoded_is("=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=", "Grüße");
	decoded_is("=?ISO-8859-1?Q?Caf=E9?= =?UTF-8?B?w6k=?= mixed", "Caféé mixed");
	decoded_is("=?utf-8?q?a_b?=  plain   text", "a b  plain   text");
	decoded_is("=?UTF-8?B?broken base64?= and =?X-UNKNOWN?Q?abc?=", "=?UTF-8?B?broken base64?= and =?X-UNKNOWN?Q?abc?=");
	decoded_is("=?UTF-8?B?w6k?=", "é");   /* unpadded base64 is accepted */
	decoded_is("=?UTF-8?B?/w==?=", "=?UTF-8?B?/w==?=");   /* not UTF-8: kept */
	decoded_is("=?UTF-8*de?Q?x?=", "x");   /* RFC 2231 language suffix */
	decoded_is("a very long subject\r\n a very long subject", "a very long subject a very long subject");
	decoded_is("=?koi8-r?B?8NLJ18XU?=", "Привет");
	decoded_is("=?utf-8?q?=?=", "=?utf-8?q?=?=");
	decoded_is("=?", "=?");
	decoded_is("", "");
}

static void
test_2231_decode(void **state)
{
	struct mc_buf b;
	mc_buf_init(&b, 1024);
	const char *v = "UTF-8''r%C3%A9sum%C3%A9.pdf";
	assert_int_equal(mc_header_decode_2231(v, strlen(v), &b), 0);
	assert_string_equal(b.data, "résumé.pdf");
	mc_buf_reset(&b);
	v = "iso-8859-1'en'%E9t%E9";
	assert_int_equal(mc_header_decode_2231(v, strlen(v), &b), 0);
	assert_string_equal(b.data, "été");
	assert_int_equal(mc_header_decode_2231("nothing", 7, &b), -1);
	mc_buf_free(&b);
}

static void
nstring_is(const char *in, const char *want)
{
	struct mc_buf b;
	mc_buf_init(&b, 1024);
	assert_int_equal(mc_imap_nstring(&b, in, in ? strlen(in) : 0), 0);
	assert_string_equal(b.data, want);
	mc_buf_free(&b);
}

static void
test_nstring(void **state)
{
	nstring_is(NULL, "NIL");
	nstring_is("", "\"\"");
	nstring_is("a \"b\" c\\", "\"a \\\"b\\\" c\\\\\"");
	nstring_is("\"\"\"\"\"", "{5}\r\n\"\"\"\"\"");   /* more than four escapes: a literal, as Dovecot */
	nstring_is("J\xc3\xb6rg", "{5}\r\nJ\xc3\xb6rg");
	nstring_is("a\r\nb", "{4}\r\na\r\nb");
}

static void
test_header_fields(void **state)
{
	static const char block[] = "Subject: a\n very long\n\tsubject\nnot a field\nX-Empty:\nTo :b@c\r\n\nbody: no\n";
	const char *p = block, *end = block + sizeof(block) - 1;
	struct mc_header_field f;
	assert_true(mc_header_next(&p, end, &f));
	assert_int_equal(f.namelen, 7);
	assert_memory_equal(f.name, "Subject", 7);
	assert_int_equal(f.rawlen, strlen("Subject: a\n very long\n\tsubject\n"));
	assert_int_equal(f.valuelen, strlen("a\n very long\n\tsubject"));
	assert_true(mc_header_next(&p, end, &f));
	assert_memory_equal(f.name, "X-Empty", 7);
	assert_int_equal(f.valuelen, 0);
	assert_true(mc_header_next(&p, end, &f));
	assert_int_equal(f.namelen, 2);
	assert_memory_equal(f.value, "b@c", f.valuelen);
	assert_int_equal(f.rawlen, strlen("To :b@c\r\n"));
	assert_false(mc_header_next(&p, end, &f));
	assert_true(p == strstr(block, "\nbody") + 0);
	/* no blank line, no final line end */
	static const char cut[] = "A: 1\nB: 2";
	p = cut;
	end = cut + sizeof(cut) - 1;
	assert_true(mc_header_next(&p, end, &f));
	assert_true(mc_header_next(&p, end, &f));
	assert_memory_equal(f.value, "2", f.valuelen);
	assert_false(mc_header_next(&p, end, &f));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_address_bound),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_encoded_words),
		cmocka_unit_test(test_2231_decode),
		cmocka_unit_test(test_nstring),
		cmocka_unit_test(test_header_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
