/*
 * dnsmsg.h - reading DNS answers and checking names, for resolverd's DNS
 * (dns.c). c-ares sends the queries and matches the answers to them;
 * this file reads an answer's bytes itself, because c-ares 1.18's
 * parsers give no TTLs for MX, no SOA for negative caching and do not
 * check each record's owner against the question and its CNAME chain.
 *
 * No I/O, no allocation, no clock: bytes in, a struct dns_result out;
 * and the ordering of MX records, with the random source passed in.
 * Everything is bounded (names, records kept, compression jumps) and the
 * parser is fuzzed (tests/fuzz/fuzz_dnsmsg.c).
 */
#ifndef RESOLVERD_DNSMSG_H
#define RESOLVERD_DNSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_T_A 1
#define DNS_T_CNAME 5
#define DNS_T_SOA 6
#define DNS_T_MX 15
#define DNS_T_AAAA 28

/* A domain name as text without the final dot: at most 253 characters, and the NUL. */
#define DNS_NAME_LEN 254
/* Records of the asked type kept from one answer; more are counted as ignored. */
#define DNS_RR_MAX 32
/* CNAMEs followed from the asked name (RFC 1034 allows chains; loops must end). */
#define DNS_CNAME_MAX 8

enum dns_status {
	DNS_OK = 1,          /* records of the asked type (rr[0..n)) */
	DNS_NODATA = 2,      /* the name exists, without records of that type */
	DNS_NXDOMAIN = 3,    /* the name (or the end of its CNAME chain) does not exist */
	DNS_TEMPFAIL = 4,    /* SERVFAIL, REFUSED, a timeout, an answer that does not fit the question */
};

struct dns_rr {
	uint16_t pref;                 /* MX */
	uint8_t addr[16];              /* A: 4 bytes, AAAA: 16 */
	char name[DNS_NAME_LEN];       /* MX: the exchange, lowercased; "" for a null MX (".") */
};

struct dns_result {
	enum dns_status status;
	uint32_t ttl;                  /* seconds it may be kept: the smallest TTL used, or the SOA's for a negative answer; 0: not at all */
	unsigned n;
	unsigned ignored;              /* records refused (malformed names, owners outside the chain, over the bound) */
	char why[96];                  /* TEMPFAIL: what went wrong; else the last reason a record was ignored, or "" */
	struct dns_rr rr[DNS_RR_MAX];
};

/*
 * Read an answer to (qname, qtype, class IN): the header, the question
 * (which must be the one asked), the answer section (CNAMEs followed from
 * qname; only records owned by a name of that chain count) and, for a
 * negative answer, the SOA in the authority section. Fills *out and
 * returns out->status; never reads past len.
 */
enum dns_status dns_parse(const uint8_t *msg, size_t len, const char *qname, uint16_t qtype, struct dns_result *out);

/*
 * Check a host or domain name and copy it lowercased without a final dot
 * into out[DNS_NAME_LEN]: labels of letters, digits and hyphens (not at a
 * label's ends), 1..63 characters, 253 in all. A name whose last label is
 * all digits (an IP address such as "192.0.2.1") is refused, so is "".
 * Returns false with out = "" for anything refused.
 */
bool dns_name_check(const char *in, char *out);

/*
 * Put MX records in the order to try: preference ascending, records of
 * equal preference in a random order (RFC 5321 §5.1), drawn with
 * rnd(bound) in [0, bound) so tests can fix it.
 */
void dns_mx_order(struct dns_rr *rr, unsigned n, uint32_t (*rnd)(uint32_t bound));

/* "MX", "A", "AAAA", or "TYPE<n>". The result is static for the known ones, else in buf[16]. */
const char *dns_type_name(uint16_t type, char *buf);

#endif
