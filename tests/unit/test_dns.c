/*
 * test_dns.c - resolverd's DNS pieces that need no network: reading answers
 * (dnsmsg.c) from messages built here byte by byte, name checks, the TTL
 * cache (dnscache.c) on a clock the test moves, MX ordering with a fixed
 * random source (dnsmsg.c), and the nameservers setting (util/config.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "resolverd/dnscache.h"
#include "resolverd/dnsmsg.h"
#include "util/config.h"

/* ---- building messages ---- */

struct wire {
	uint8_t b[2048];
	size_t n;
};

static void
put8(struct wire *w, unsigned v)
{
	w->b[w->n++] = (uint8_t)v;
}

static void
put16(struct wire *w, unsigned v)
{
	put8(w, v >> 8);
	put8(w, v & 0xff);
}

static void
put32(struct wire *w, uint32_t v)
{
	put16(w, v >> 16);
	put16(w, v & 0xffff);
}

/* A name in plain labels ("" is the root). */
static void
put_name(struct wire *w, const char *name)
{
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t len = dot ? (size_t)(dot - name) : strlen(name);
		put8(w, (unsigned)len);
		memcpy(w->b + w->n, name, len);
		w->n += len;
		name += len + (dot ? 1 : 0);
	}
	put8(w, 0);
}

static void
put_ptr(struct wire *w, size_t off)
{
	put16(w, 0xc000 | (unsigned)off);
}

/* Header and question; rcode in the flags; counts of the three sections. */
static void
start(struct wire *w, const char *qname, unsigned qtype, unsigned rcode, unsigned an, unsigned ns)
{
	w->n = 0;
	put16(w, 0x1234);
	put16(w, 0x8180 | rcode);
	put16(w, 1);
	put16(w, an);
	put16(w, ns);
	put16(w, 0);
	put_name(w, qname);
	put16(w, qtype);
	put16(w, 1);
}

/* A record's fixed part; the caller writes rdlen bytes of data next. */
static void
rr_head(struct wire *w, const char *owner, unsigned type, uint32_t ttl, unsigned rdlen)
{
	put_name(w, owner);
	put16(w, type);
	put16(w, 1);
	put32(w, ttl);
	put16(w, rdlen);
}

static void
rr_mx(struct wire *w, const char *owner, unsigned pref, const char *target, uint32_t ttl)
{
	size_t len = strlen(target) ? strlen(target) + 2 : 1;
	rr_head(w, owner, DNS_T_MX, ttl, 2 + (unsigned)len);
	put16(w, pref);
	put_name(w, target);
}

static void
rr_a(struct wire *w, const char *owner, uint32_t ttl, uint8_t last)
{
	rr_head(w, owner, DNS_T_A, ttl, 4);
	put8(w, 192), put8(w, 0), put8(w, 2), put8(w, last);
}

static void
rr_cname(struct wire *w, const char *owner, const char *target, uint32_t ttl)
{
	rr_head(w, owner, DNS_T_CNAME, ttl, (unsigned)strlen(target) + 2);
	put_name(w, target);
}

static void
rr_soa(struct wire *w, const char *zone, uint32_t ttl, uint32_t minimum)
{
	rr_head(w, zone, DNS_T_SOA, ttl, (unsigned)(strlen("ns.") + strlen(zone) + 2 + strlen("h.") + strlen(zone) + 2 + 20));
	char n1[300], n2[300];
	snprintf(n1, sizeof(n1), "ns.%s", zone);
	snprintf(n2, sizeof(n2), "h.%s", zone);
	put_name(w, n1);
	put_name(w, n2);
	put32(w, 1), put32(w, 3600), put32(w, 600), put32(w, 86400), put32(w, minimum);
}

static struct dns_result res;

/* ---- dnsmsg.c ---- */

static void
test_parse_mx(void **state)
{
	struct wire w;
	start(&w, "example.org", DNS_T_MX, 0, 3, 0);
	rr_mx(&w, "example.org", 20, "mx2.example.org", 300);
	/* owner and target compressed against the question's name (offset 12) */
	put_ptr(&w, 12);
	put16(&w, DNS_T_MX), put16(&w, 1), put32(&w, 120), put16(&w, 2 + 4 + 2);
	put16(&w, 10);
	put8(&w, 3), memcpy(w.b + w.n, "MX1", 3), w.n += 3;
	put_ptr(&w, 12);
	rr_mx(&w, "Example.ORG", 30, "mx3.example.org", 600);
	assert_int_equal(dns_parse(w.b, w.n, "example.org", DNS_T_MX, &res), DNS_OK);
	assert_int_equal(res.n, 3);
	assert_int_equal(res.ignored, 0);
	assert_int_equal(res.ttl, 120);
	assert_string_equal(res.rr[0].name, "mx2.example.org");
	assert_int_equal(res.rr[1].pref, 10);
	assert_string_equal(res.rr[1].name, "mx1.example.org");
	assert_int_equal(res.rr[2].pref, 30);
}

static void
test_parse_bad_targets_ignored(void **state)
{
	struct wire w;
	start(&w, "example.org", DNS_T_MX, 0, 4, 0);
	rr_mx(&w, "example.org", 10, "192.0.2.1", 300);        /* an IP literal */
	rr_mx(&w, "example.org", 10, "bad_host.example.org", 300);
	rr_mx(&w, "other.org", 10, "mx.other.org", 300);       /* owner outside the chain */
	rr_mx(&w, "example.org", 20, "good.example.org", 300);
	assert_int_equal(dns_parse(w.b, w.n, "example.org", DNS_T_MX, &res), DNS_OK);
	assert_int_equal(res.n, 1);
	assert_int_equal(res.ignored, 3);
	assert_string_equal(res.rr[0].name, "good.example.org");

	/* every MX refused: still OK (MX records exist, so no implicit MX), with none */
	start(&w, "example.org", DNS_T_MX, 0, 1, 0);
	rr_mx(&w, "example.org", 10, "10.0.0.1", 300);
	assert_int_equal(dns_parse(w.b, w.n, "example.org", DNS_T_MX, &res), DNS_OK);
	assert_int_equal(res.n, 0);
	assert_string_equal(res.why, "MX target is not a host name");
}

static void
test_parse_many_mx_keeps_the_best(void **state)
{
	struct wire w;
	start(&w, "example.org", DNS_T_MX, 0, 40, 0);
	for (unsigned i = 0; i < 40; i++) {
		char t[32];
		snprintf(t, sizeof(t), "h%02u.example.org", i);
		rr_mx(&w, "example.org", 40 - i, t, 300);
	}
	assert_int_equal(dns_parse(w.b, w.n, "example.org", DNS_T_MX, &res), DNS_OK);
	assert_int_equal(res.n, DNS_RR_MAX);
	assert_int_equal(res.ignored, 0);
	unsigned seen = 0;
	for (unsigned i = 0; i < res.n; i++) {
		assert_true(res.rr[i].pref >= 1 && res.rr[i].pref <= 32);
		seen |= 1u << (res.rr[i].pref - 1);
	}
	assert_int_equal(seen, 0xffffffffu);
}

static void
test_parse_null_mx(void **state)
{
	struct wire w;
	start(&w, "example.org", DNS_T_MX, 0, 1, 0);
	rr_mx(&w, "example.org", 0, "", 300);
	assert_int_equal(dns_parse(w.b, w.n, "example.org", DNS_T_MX, &res), DNS_OK);
	assert_int_equal(res.n, 1);
	assert_string_equal(res.rr[0].name, "");
}

static void
test_parse_cname_chain(void **state)
{
	struct wire w;
	/* out of order: the A record first, then the chain */
	start(&w, "www.example.org", DNS_T_A, 0, 3, 0);
	rr_a(&w, "host.example.net", 50, 7);
	rr_cname(&w, "mid.example.com", "host.example.net", 400);
	rr_cname(&w, "www.example.org", "mid.example.com", 30);
	assert_int_equal(dns_parse(w.b, w.n, "www.example.org", DNS_T_A, &res), DNS_OK);
	assert_int_equal(res.n, 1);
	assert_int_equal(res.rr[0].addr[3], 7);
	assert_int_equal(res.ttl, 30);

	/* the A of a name that is not the chain's end is not taken */
	start(&w, "www.example.org", DNS_T_A, 0, 2, 0);
	rr_cname(&w, "www.example.org", "host.example.net", 30);
	rr_a(&w, "www.example.org", 50, 8);
	assert_int_equal(dns_parse(w.b, w.n, "www.example.org", DNS_T_A, &res), DNS_NODATA);
	assert_int_equal(res.ignored, 1);

	/* a loop ends */
	start(&w, "a.example.org", DNS_T_A, 0, 2, 0);
	rr_cname(&w, "a.example.org", "b.example.org", 30);
	rr_cname(&w, "b.example.org", "a.example.org", 30);
	assert_int_equal(dns_parse(w.b, w.n, "a.example.org", DNS_T_A, &res), DNS_TEMPFAIL);
	assert_string_equal(res.why, "CNAME chain too long");
}

static void
test_parse_negative(void **state)
{
	struct wire w;
	start(&w, "nx.example.org", DNS_T_MX, 3, 0, 1);
	rr_soa(&w, "example.org", 3600, 300);
	assert_int_equal(dns_parse(w.b, w.n, "nx.example.org", DNS_T_MX, &res), DNS_NXDOMAIN);
	assert_int_equal(res.ttl, 300);

	/* the SOA's own TTL when it is smaller than its minimum (RFC 2308 §5) */
	start(&w, "example.org", DNS_T_MX, 0, 0, 1);
	rr_soa(&w, "example.org", 60, 300);
	assert_int_equal(dns_parse(w.b, w.n, "example.org", DNS_T_MX, &res), DNS_NODATA);
	assert_int_equal(res.ttl, 60);

	/* no SOA: not to be kept */
	start(&w, "example.org", DNS_T_MX, 3, 0, 0);
	assert_int_equal(dns_parse(w.b, w.n, "example.org", DNS_T_MX, &res), DNS_NXDOMAIN);
	assert_int_equal(res.ttl, 0);
}

static void
test_parse_errors(void **state)
{
	struct wire w;
	start(&w, "example.org", DNS_T_MX, 2, 0, 0);
	assert_int_equal(dns_parse(w.b, w.n, "example.org", DNS_T_MX, &res), DNS_TEMPFAIL);
	assert_string_equal(res.why, "SERVFAIL");
	start(&w, "example.org", DNS_T_MX, 5, 0, 0);
	assert_int_equal(dns_parse(w.b, w.n, "example.org", DNS_T_MX, &res), DNS_TEMPFAIL);
	assert_string_equal(res.why, "REFUSED");

	/* the answer to another question */
	start(&w, "example.com", DNS_T_MX, 0, 1, 0);
	rr_mx(&w, "example.com", 10, "mx.example.com", 300);
	assert_int_equal(dns_parse(w.b, w.n, "example.org", DNS_T_MX, &res), DNS_TEMPFAIL);
	assert_string_equal(res.why, "answer to another question");
	assert_int_equal(dns_parse(w.b, w.n, "example.com", DNS_T_A, &res), DNS_TEMPFAIL);

	/* every prefix of a good answer is refused, never read past */
	start(&w, "example.org", DNS_T_MX, 0, 1, 1);
	rr_mx(&w, "example.org", 10, "mx.example.org", 300);
	size_t answer_end = w.n;
	rr_soa(&w, "example.org", 60, 60);
	for (size_t n = 0; n < w.n; n++) {
		/* the authority section is read only for a negative answer */
		enum dns_status s = dns_parse(w.b, n, "example.org", DNS_T_MX, &res);
		assert_true(s == DNS_TEMPFAIL || (s == DNS_OK && n >= answer_end));
	}

	/* a pointer forwards (or to itself) is refused: loops cannot be built */
	start(&w, "example.org", DNS_T_MX, 0, 1, 0);
	size_t here = w.n;
	put_ptr(&w, here);
	put16(&w, DNS_T_MX), put16(&w, 1), put32(&w, 1), put16(&w, 4), put16(&w, 1), put_ptr(&w, here);
	assert_int_equal(dns_parse(w.b, w.n, "example.org", DNS_T_MX, &res), DNS_TEMPFAIL);

	/* a query, not an answer */
	start(&w, "example.org", DNS_T_MX, 0, 0, 0);
	w.b[2] &= 0x7f;
	assert_int_equal(dns_parse(w.b, w.n, "example.org", DNS_T_MX, &res), DNS_TEMPFAIL);

	/* a TTL with the top bit set counts as 0 (RFC 2181 §8) */
	start(&w, "example.org", DNS_T_A, 0, 1, 0);
	rr_a(&w, "example.org", 0x80000000u, 1);
	assert_int_equal(dns_parse(w.b, w.n, "example.org", DNS_T_A, &res), DNS_OK);
	assert_int_equal(res.ttl, 0);

	/* an A record of the wrong size */
	start(&w, "example.org", DNS_T_A, 0, 1, 0);
	rr_head(&w, "example.org", DNS_T_A, 60, 3);
	put8(&w, 1), put8(&w, 2), put8(&w, 3);
	assert_int_equal(dns_parse(w.b, w.n, "example.org", DNS_T_A, &res), DNS_OK);
	assert_int_equal(res.n, 0);
	assert_int_equal(res.ignored, 1);
}

static void
test_name_check(void **state)
{
	char out[DNS_NAME_LEN];
	assert_true(dns_name_check("Mail.Example.ORG.", out));
	assert_string_equal(out, "mail.example.org");
	assert_true(dns_name_check("xn--bcher-kva.example", out));
	assert_true(dns_name_check("localhost", out));
	assert_true(dns_name_check("1.2.3.example", out));
	assert_true(dns_name_check("a-b.c0m", out));

	char label63[64], long_name[400];
	memset(label63, 'a', 63);
	label63[63] = '\0';
	snprintf(long_name, sizeof(long_name), "%s.%s.%s.%s", label63, label63, label63, label63);
	assert_true(strlen(long_name) > 253);
	assert_false(dns_name_check(long_name, out));
	char ok[100];
	snprintf(ok, sizeof(ok), "%s.org", label63);
	assert_true(dns_name_check(ok, out));
	char over[100];
	snprintf(over, sizeof(over), "a%s.org", label63);
	assert_false(dns_name_check(over, out));

	static const char *const bad[] = { "", ".", "a..b", ".a.b", "-a.b", "a-.b", "a.b-", "a_b.org", "a b.org",
					  "192.0.2.1", "[192.0.2.1]", "a.b.123", "ex\xc3\xa4mple.org", "a.b..",
					  "a/b.org" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(out, "x");
		assert_false(dns_name_check(bad[i], out));
		assert_string_equal(out, "");
	}
}

/* ---- dnscache.c ---- */

static struct dns_result *
result(enum dns_status s, uint32_t ttl, unsigned n)
{
	memset(&res, 0, sizeof(res));
	res.status = s;
	res.ttl = ttl;
	res.n = n;
	for (unsigned i = 0; i < n; i++) {
		res.rr[i].pref = (uint16_t)(10 * (i + 1));
		snprintf(res.rr[i].name, sizeof(res.rr[i].name), "mx%u.example.org", i);
	}
	return &res;
}

static void
test_cache_ttl(void **state)
{
	struct dns_cache *c = dns_cache_new(100, 900);
	struct dns_result got;
	uint64_t now = 1000000;
	dns_cache_put(c, "example.org", DNS_T_MX, result(DNS_OK, 60, 2), now);
	assert_true(dns_cache_get(c, "example.org", DNS_T_MX, now + 59999, &got));
	assert_int_equal(got.status, DNS_OK);
	assert_int_equal(got.n, 2);
	assert_string_equal(got.rr[1].name, "mx1.example.org");
	assert_int_equal(got.ttl, 1);
	/* another type of the same name is another entry */
	assert_false(dns_cache_get(c, "example.org", DNS_T_A, now, &got));
	/* expired: gone */
	assert_false(dns_cache_get(c, "example.org", DNS_T_MX, now + 60000, &got));
	assert_int_equal(dns_cache_count(c), 0);

	/* TTL 0 and TEMPFAIL are never kept; a long TTL is cut to a day */
	dns_cache_put(c, "zero.org", DNS_T_A, result(DNS_OK, 0, 1), now);
	dns_cache_put(c, "fail.org", DNS_T_A, result(DNS_TEMPFAIL, 600, 0), now);
	assert_int_equal(dns_cache_count(c), 0);
	dns_cache_put(c, "long.org", DNS_T_A, result(DNS_OK, 7 * 86400, 1), now);
	assert_true(dns_cache_get(c, "long.org", DNS_T_A, now + 86400ull * 1000 - 1, &got));
	assert_false(dns_cache_get(c, "long.org", DNS_T_A, now + 86400ull * 1000, &got));

	/* a new answer replaces the old */
	dns_cache_put(c, "example.org", DNS_T_MX, result(DNS_OK, 60, 1), now);
	dns_cache_put(c, "example.org", DNS_T_MX, result(DNS_OK, 60, 3), now);
	assert_int_equal(dns_cache_count(c), 1);
	assert_true(dns_cache_get(c, "example.org", DNS_T_MX, now, &got));
	assert_int_equal(got.n, 3);
	dns_cache_free(c);
}

static void
test_cache_negative(void **state)
{
	struct dns_cache *c = dns_cache_new(100, 300);
	struct dns_result got;
	uint64_t now = 5;
	dns_cache_put(c, "nx.org", DNS_T_MX, result(DNS_NXDOMAIN, 3600, 0), now);
	dns_cache_put(c, "nodata.org", DNS_T_MX, result(DNS_NODATA, 100, 0), now);
	assert_true(dns_cache_get(c, "nx.org", DNS_T_MX, now + 299000, &got));
	assert_int_equal(got.status, DNS_NXDOMAIN);
	assert_int_equal(got.n, 0);
	/* the cap (300 s) beats the SOA's 3600 */
	assert_false(dns_cache_get(c, "nx.org", DNS_T_MX, now + 300000, &got));
	assert_true(dns_cache_get(c, "nodata.org", DNS_T_MX, now + 99999, &got));
	assert_int_equal(got.status, DNS_NODATA);
	assert_false(dns_cache_get(c, "nodata.org", DNS_T_MX, now + 100000, &got));
	/* a cap of 0: negative answers are not kept at all */
	dns_cache_set_limits(c, 100, 0);
	dns_cache_put(c, "nx.org", DNS_T_MX, result(DNS_NXDOMAIN, 3600, 0), now);
	assert_false(dns_cache_get(c, "nx.org", DNS_T_MX, now, &got));
	dns_cache_free(c);
}

static void
test_cache_bounded(void **state)
{
	struct dns_cache *c = dns_cache_new(3, 300);
	struct dns_result got;
	dns_cache_put(c, "a.org", DNS_T_A, result(DNS_OK, 60, 1), 0);
	dns_cache_put(c, "b.org", DNS_T_A, result(DNS_OK, 60, 1), 0);
	dns_cache_put(c, "c.org", DNS_T_A, result(DNS_OK, 60, 1), 0);
	/* a.org used last: b.org is the one used longest ago and goes */
	assert_true(dns_cache_get(c, "a.org", DNS_T_A, 1, &got));
	dns_cache_put(c, "d.org", DNS_T_A, result(DNS_OK, 60, 1), 2);
	assert_int_equal(dns_cache_count(c), 3);
	assert_false(dns_cache_get(c, "b.org", DNS_T_A, 3, &got));
	assert_true(dns_cache_get(c, "a.org", DNS_T_A, 3, &got));
	assert_true(dns_cache_get(c, "c.org", DNS_T_A, 3, &got));
	assert_true(dns_cache_get(c, "d.org", DNS_T_A, 3, &got));
	/* shrinking drops the oldest use first */
	dns_cache_set_limits(c, 1, 300);
	assert_int_equal(dns_cache_count(c), 1);
	assert_true(dns_cache_get(c, "d.org", DNS_T_A, 4, &got));
	/* many entries through a small cache */
	dns_cache_set_limits(c, 50, 300);
	for (unsigned i = 0; i < 1000; i++) {
		char name[32];
		snprintf(name, sizeof(name), "n%u.org", i);
		dns_cache_put(c, name, DNS_T_A, result(DNS_OK, 60, 1), 10);
	}
	assert_int_equal(dns_cache_count(c), 50);
	assert_true(dns_cache_get(c, "n999.org", DNS_T_A, 11, &got));
	assert_false(dns_cache_get(c, "n949.org", DNS_T_A, 11, &got));
	dns_cache_free(c);
	dns_cache_free(NULL);
}

/* ---- dnsmsg.c: ordering ---- */

static uint32_t
rnd_zero(uint32_t bound)
{
	return 0;
}

static uint32_t rnd_state;

static uint32_t
rnd_lcg(uint32_t bound)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return (rnd_state >> 16) % bound;
}

static void
test_mx_order(void **state)
{
	struct dns_rr rr[6];
	static const unsigned prefs[] = { 20, 10, 30, 10, 20, 10 };
	memset(rr, 0, sizeof(rr));
	for (unsigned i = 0; i < 6; i++) {
		rr[i].pref = (uint16_t)prefs[i];
		snprintf(rr[i].name, sizeof(rr[i].name), "h%u", i);
	}
	dns_mx_order(rr, 6, rnd_zero);
	for (unsigned i = 1; i < 6; i++)
		assert_true(rr[i - 1].pref <= rr[i].pref);
	assert_int_equal(rr[5].pref, 30);
	assert_string_equal(rr[5].name, "h2");

	/* with a real random source every one of the three at 10 comes first, about equally often */
	unsigned first[6] = { 0 };
	rnd_state = 42;
	for (unsigned round = 0; round < 3000; round++) {
		for (unsigned i = 0; i < 6; i++) {
			rr[i].pref = (uint16_t)prefs[i];
			snprintf(rr[i].name, sizeof(rr[i].name), "h%u", i);
		}
		dns_mx_order(rr, 6, rnd_lcg);
		assert_int_equal(rr[0].pref, 10);
		assert_int_equal(rr[3].pref, 20);
		assert_int_equal(rr[5].pref, 30);
		first[rr[0].name[1] - '0']++;
	}
	assert_true(first[1] > 800 && first[3] > 800 && first[5] > 800);
	assert_int_equal(first[0] + first[2] + first[4], 0);

	dns_mx_order(rr, 0, rnd_lcg);
	dns_mx_order(rr, 1, rnd_lcg);
}

/* ---- util/config.c: the nameservers setting ---- */

static void
test_nameservers(void **state)
{
	struct mc_listen_list l;
	assert_int_equal(mc_parse_nameservers("", &l), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(mc_parse_nameservers("127.0.0.1:5353, [::1]:5354,192.0.2.53 , 2001:db8::53", &l), 0);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.a[0].text, "127.0.0.1:5353");
	assert_string_equal(l.a[1].text, "[::1]:5354");
	assert_string_equal(l.a[2].text, "192.0.2.53:53");
	assert_string_equal(l.a[3].text, "[2001:db8::53]:53");
	static const char *const bad[] = { "127.0.0.1:0", "127.0.0.1:65536", "dns.example", "[192.0.2.1]:53", "*:53",
					  ":53", "[::1]", "[::1]:", "127.0.0.1:53x", "1.2.3.4.5" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mc_parse_nameservers(bad[i], &l), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_mx),
		cmocka_unit_test(test_parse_bad_targets_ignored),
		cmocka_unit_test(test_parse_many_mx_keeps_the_best),
		cmocka_unit_test(test_parse_null_mx),
		cmocka_unit_test(test_parse_cname_chain),
		cmocka_unit_test(test_parse_negative),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_name_check),
		cmocka_unit_test(test_cache_ttl),
		cmocka_unit_test(test_cache_negative),
		cmocka_unit_test(test_cache_bounded),
		cmocka_unit_test(test_mx_order),
		cmocka_unit_test(test_nameservers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
