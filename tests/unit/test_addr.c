/*
 * test_addr.c - SMTP paths and bare addresses: null path, source routes,
 * quoted local parts, address literals, the 64/255/256 limits, UTF-8 with
 * and without SMTPUTF8, garbage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mail/addr.h"

static int
path(const char *s, bool allow_null, bool utf8, struct mc_addr *a, const char **rest)
{
	const char *r;
	int e = mc_addr_parse_path(s, allow_null, utf8, a, &r);
	if (rest)
		*rest = r;
	return e;
}

static void
test_simple_paths(void **state)
{
	struct mc_addr a;
	const char *rest;
	char out[600];

	assert_int_equal(path("<Alice@Example.TEST> SIZE=10", false, false, &a, &rest), MC_ADDR_OK);
	assert_string_equal(a.local, "Alice");
	assert_string_equal(a.domain, "example.test");
	assert_string_equal(rest, " SIZE=10");
	assert_false(a.null);
	assert_int_equal(mc_addr_format(&a, out, sizeof(out)), 0);
	assert_string_equal(out, "Alice@example.test");

	assert_int_equal(path("<first.last+tag@sub-1.example.test>", false, false, &a, &rest), MC_ADDR_OK);
	assert_string_equal(a.local, "first.last+tag");
	assert_string_equal(rest, "");

	assert_int_equal(path("<!#$%&'*+-/=?^_`{|}~@x.y>", false, false, &a, NULL), MC_ADDR_OK);
}

static void
test_null_path(void **state)
{
	struct mc_addr a;
	const char *rest;
	char out[16] = "x";

	assert_int_equal(path("<> BODY=8BITMIME", true, false, &a, &rest), MC_ADDR_OK);
	assert_true(a.null);
	assert_string_equal(rest, " BODY=8BITMIME");
	assert_int_equal(mc_addr_format(&a, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	/* RCPT TO:<> is not a recipient. */
	assert_int_equal(path("<>", false, false, &a, NULL), MC_ADDR_SYNTAX);
}

static void
test_source_route(void **state)
{
	struct mc_addr a;
	const char *rest;

	assert_int_equal(path("<@relay.one,@relay.two:user@dest.test>", false, false, &a, &rest), MC_ADDR_OK);
	assert_string_equal(a.local, "user");
	assert_string_equal(a.domain, "dest.test");
	assert_string_equal(rest, "");
	assert_int_equal(path("<@relay.one:user@dest.test>", false, false, &a, NULL), MC_ADDR_OK);
	assert_int_equal(path("<@relay.one,user@dest.test>", false, false, &a, NULL), MC_ADDR_SYNTAX);
	assert_int_equal(path("<@:user@dest.test>", false, false, &a, NULL), MC_ADDR_SYNTAX);
	assert_int_equal(path("<@relay..one:user@dest.test>", false, false, &a, NULL), MC_ADDR_SYNTAX);
}

static void
test_quoted_local(void **state)
{
	struct mc_addr a;

	assert_int_equal(path("<\"john smith\"@example.test>", false, false, &a, NULL), MC_ADDR_OK);
	assert_string_equal(a.local, "\"john smith\"");
	assert_int_equal(path("<\"a\\\"b\\\\c\"@example.test>", false, false, &a, NULL), MC_ADDR_OK);
	assert_string_equal(a.local, "\"a\\\"b\\\\c\"");
	assert_int_equal(path("<\"\"@example.test>", false, false, &a, NULL), MC_ADDR_OK);
	/* An unterminated quote, a control character inside, a quote in the middle of an atom. */
	assert_int_equal(path("<\"abc@example.test>", false, false, &a, NULL), MC_ADDR_SYNTAX);
	assert_int_equal(path("<\"a\tb\"@example.test>", false, false, &a, NULL), MC_ADDR_SYNTAX);
	assert_int_equal(path("<ab\"c\"@example.test>", false, false, &a, NULL), MC_ADDR_SYNTAX);
	/* 64 octets of content, each escaped: still a valid local part. */
	char s[300] = "<\"";
	for (int i = 0; i < 64; i++)
		strcat(s, "\\x");
	strcat(s, "\"@e.test>");
	assert_int_equal(path(s, false, false, &a, NULL), MC_ADDR_OK);
	assert_int_equal(strlen(a.local), 130);
}

static void
test_literals(void **state)
{
	struct mc_addr a;

	assert_int_equal(path("<postmaster@[192.0.2.1]>", false, false, &a, NULL), MC_ADDR_OK);
	assert_string_equal(a.domain, "[192.0.2.1]");
	assert_int_equal(path("<postmaster@[IPv6:2001:db8::1]>", false, false, &a, NULL), MC_ADDR_OK);
	assert_int_equal(path("<postmaster@[300.0.2.1]>", false, false, &a, NULL), MC_ADDR_SYNTAX);
	assert_int_equal(path("<postmaster@[IPv6:zz::1]>", false, false, &a, NULL), MC_ADDR_SYNTAX);
	assert_int_equal(path("<postmaster@[]>", false, false, &a, NULL), MC_ADDR_SYNTAX);
	assert_true(mc_addr_domain_ok("[127.0.0.1]", false));
	assert_false(mc_addr_domain_ok("[127.0.0.1", false));
}

static void
test_limits(void **state)
{
	struct mc_addr a;
	char s[700], local[100], label[70], dom[300];

	/* Local part: 64 octets fine, 65 too long. */
	memset(local, 'a', 64);
	local[64] = '\0';
	snprintf(s, sizeof(s), "<%s@example.test>", local);
	assert_int_equal(path(s, false, false, &a, NULL), MC_ADDR_OK);
	snprintf(s, sizeof(s), "<%sa@example.test>", local);
	assert_int_equal(path(s, false, false, &a, NULL), MC_ADDR_TOO_LONG);

	/* Labels of 63 are fine, 64 not. */
	memset(label, 'b', 63);
	label[63] = '\0';
	snprintf(s, sizeof(s), "<x@%s.test>", label);
	assert_int_equal(path(s, false, false, &a, NULL), MC_ADDR_OK);
	snprintf(s, sizeof(s), "<x@%sb.test>", label);
	assert_int_equal(path(s, false, false, &a, NULL), MC_ADDR_SYNTAX);

	/* Domain of 255 octets (4 labels of 63 + 3 dots = 255) is fine as a bare address, 256 not. */
	snprintf(dom, sizeof(dom), "%s.%s.%s.%s", label, label, label, label);
	assert_int_equal(strlen(dom), 255);
	assert_true(mc_addr_domain_ok(dom, false));
	snprintf(s, sizeof(s), "x@%s", dom);
	assert_int_equal(mc_addr_parse(s, false, &a), MC_ADDR_OK);
	assert_string_equal(a.domain, dom);
	snprintf(s, sizeof(s), "x@a.%s", dom);
	assert_int_equal(mc_addr_parse(s, false, &a), MC_ADDR_TOO_LONG);
	assert_false(mc_addr_domain_ok(s + 2, false));

	/* Path: 256 octets with the brackets is the limit. local 64 + '@' + domain 189 + "<>" = 256. */
	char d189[260];
	snprintf(d189, sizeof(d189), "%s.%s.%.61s", label, label, label); /* 63+1+63+1+61 = 189 */
	assert_int_equal(strlen(d189), 189);
	snprintf(s, sizeof(s), "<%s@%s>", local, d189);
	assert_int_equal(strlen(s), 256);
	assert_int_equal(path(s, false, false, &a, NULL), MC_ADDR_OK);
	snprintf(s, sizeof(s), "<%s@a.%s>", local, d189);
	assert_int_equal(path(s, false, false, &a, NULL), MC_ADDR_TOO_LONG);
}

static void
test_utf8(void **state)
{
	struct mc_addr a;

	assert_int_equal(path("<j\xc3\xb6rg@b\xc3\xbc" "cher.test>", false, false, &a, NULL), MC_ADDR_NEED_UTF8);
	assert_int_equal(path("<j\xc3\xb6rg@b\xc3\xbc" "cher.test>", false, true, &a, NULL), MC_ADDR_OK);
	assert_true(a.utf8);
	assert_string_equal(a.local, "j\xc3\xb6rg");
	assert_string_equal(a.domain, "b\xc3\xbc" "cher.test");
	/* Invalid UTF-8 is a syntax error either way: a lone continuation, an overlong, a surrogate. */
	assert_int_equal(path("<a\x80@x.test>", false, true, &a, NULL), MC_ADDR_SYNTAX);
	assert_int_equal(path("<a\xc0\xaf@x.test>", false, true, &a, NULL), MC_ADDR_SYNTAX);
	assert_int_equal(path("<a\xed\xa0\x80@x.test>", false, true, &a, NULL), MC_ADDR_SYNTAX);
	assert_int_equal(path("<a\xe2\x82@x.test>", false, true, &a, NULL), MC_ADDR_SYNTAX);
	assert_true(mc_addr_domain_ok("b\xc3\xbc" "cher.test", true));
	assert_false(mc_addr_domain_ok("b\xc3\xbc" "cher.test", false));
}

static void
test_garbage(void **state)
{
	struct mc_addr a;
	static const char *const bad[] = {
		"", "<", ">", "alice@example.test", "<alice@example.test", "<alice>", "<@>", "<alice@>",
		"<@example.test>", "<.alice@example.test>", "<alice.@example.test>", "<al..ice@example.test>",
		"<alice@example..test>", "<alice@-example.test>", "<alice@example-.test>", "<alice@example.test.>",
		"<alice@exa mple.test>", "<ali ce@example.test>", "<alice@@example.test>", "<alice@exa_mple.test>",
		"<<alice@example.test>>", "<alice@example.test", "<a(b)@example.test>", "<alice@\x01.test>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int e = path(bad[i], true, true, &a, NULL);
		if (e == MC_ADDR_OK)
			fail_msg("accepted: '%s'", bad[i]);
	}
	assert_int_equal(mc_addr_parse("alice@example.test trailing", false, &a), MC_ADDR_SYNTAX);
	assert_int_equal(mc_addr_parse("<alice@example.test>", false, &a), MC_ADDR_SYNTAX);
}

static void
test_lookup_key(void **state)
{
	char out[64];

	assert_int_equal(mc_addr_lookup_key("Alice+Lists@Example.TEST", out, sizeof(out)), 0);
	assert_string_equal(out, "alice@example.test");
	assert_int_equal(mc_addr_lookup_key("+only@x.test", out, sizeof(out)), 0);
	assert_string_equal(out, "+only@x.test");
	assert_int_equal(mc_addr_lookup_key("plain", out, sizeof(out)), 0);
	assert_string_equal(out, "plain");
	assert_int_equal(mc_addr_lookup_key("a-very-long-local-part@a-very-long-domain.example.test", out, 16), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_paths), cmocka_unit_test(test_null_path),
		cmocka_unit_test(test_source_route), cmocka_unit_test(test_quoted_local),
		cmocka_unit_test(test_literals),     cmocka_unit_test(test_limits),
		cmocka_unit_test(test_utf8),         cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_lookup_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
