/*
 * dnsmsg.c - reading DNS answers and checking names (see dnsmsg.h).
 *
 * Called by dns.c with the bytes c-ares received, and by the fuzz target.
 * The answer section is read once into a small table (owner, type, TTL,
 * where the data is); the CNAME chain is then followed from the question's
 * name through that table, so records may come in any order, and only
 * records owned by the chain's last name are taken. Names are read with
 * compression pointers that must point backwards (so a loop cannot be
 * built) and never past DNS_NAME_LEN. Owns nothing; never allocates.
 */
#include "resolverd/dnsmsg.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Answer records looked at in one message; the rest are counted as ignored. */
#define ANSWER_MAX 128
#define DNS_C_IN 1
#define HDR_LEN 12
/* RFC 2181 §8: a TTL with the top bit set is read as zero. */
#define TTL_MAX 0x7fffffffu

struct rec {
	char owner[DNS_NAME_LEN];
	bool owner_ok;                 /* the owner reads as text we can compare */
	uint16_t type, class;
	uint32_t ttl;
	size_t rd, rdlen;              /* the data: msg[rd .. rd + rdlen) */
};

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool
ldh(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/*
 * Read the name at msg[off] into out (lowercased; a byte that is not a
 * letter, digit or hyphen becomes '?', so the text never holds a '.' or a
 * control character of a label's own). *next is where the record goes on.
 * -1 when the name is malformed or too long.
 */
static int
read_name(const uint8_t *msg, size_t len, size_t off, char out[DNS_NAME_LEN], size_t *next)
{
	size_t o = 0;
	bool jumped = false;
	out[0] = '\0';
	for (;;) {
		if (off >= len)
			return -1;
		uint8_t c = msg[off];
		if ((c & 0xc0) == 0xc0) {
			if (off + 1 >= len)
				return -1;
			size_t ptr = (size_t)(c & 0x3f) << 8 | msg[off + 1];
			/* Backwards only: every jump goes lower, so the walk ends. */
			if (ptr >= off)
				return -1;
			if (!jumped)
				*next = off + 2;
			jumped = true;
			off = ptr;
			continue;
		}
		if (c & 0xc0)
			return -1;             /* the obsolete extended label types */
		if (c == 0) {
			if (!jumped)
				*next = off + 1;
			out[o] = '\0';
			return 0;
		}
		if (off + 1 + c > len || o + (o > 0) + c >= DNS_NAME_LEN)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (size_t i = 0; i < c; i++) {
			int ch = msg[off + 1 + i];
			out[o++] = ldh(ch) ? (char)tolower(ch) : '?';
		}
		off += 1 + (size_t)c;
	}
}

/* A name inside a record's data, which must end where the data ends (end_exact) or within it. */
static int
read_rdata_name(const uint8_t *msg, const struct rec *r, size_t off, char out[DNS_NAME_LEN], size_t *next,
		bool end_exact)
{
	size_t end = r->rd + r->rdlen;
	if (off >= end || read_name(msg, end, off, out, next) < 0)
		return -1;
	if (end_exact && *next != end)
		return -1;
	return 0;
}

static bool
name_check(const char *in, char *out)
{
	size_t len = strlen(in), label = 0;
	bool digits = true;
	out[0] = '\0';
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_LEN - 1)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '.') {
			if (label == 0 || in[i - 1] == '-')
				return false;
			label = 0;
			digits = true;
			out[i] = '.';
			continue;
		}
		if (!ldh((unsigned char)c) || (c == '-' && label == 0) || ++label > 63)
			return false;
		if (!(c >= '0' && c <= '9'))
			digits = false;
		out[i] = (char)tolower((unsigned char)c);
	}
	if (in[len - 1] == '-' || digits)
		return false;
	out[len] = '\0';
	return true;
}

bool
dns_name_check(const char *in, char *out)
{
	if (name_check(in, out))
		return true;
	out[0] = '\0';
	return false;
}

const char *
dns_type_name(uint16_t type, char *buf)
{
	switch (type) {
	case DNS_T_A: return "A";
	case DNS_T_AAAA: return "AAAA";
	case DNS_T_MX: return "MX";
	case DNS_T_CNAME: return "CNAME";
	case DNS_T_SOA: return "SOA";
	default:
		snprintf(buf, 16, "TYPE%u", type);
		return buf;
	}
}

static enum dns_status
fail(struct dns_result *out, const char *why)
{
	out->status = DNS_TEMPFAIL;
	out->n = 0;
	out->ttl = 0;
	snprintf(out->why, sizeof(out->why), "%s", why);
	return DNS_TEMPFAIL;
}

static void
ignore(struct dns_result *out, const char *why)
{
	out->ignored++;
	snprintf(out->why, sizeof(out->why), "%s", why);
}

static uint32_t
ttl_of(uint32_t ttl)
{
	return ttl > TTL_MAX ? 0 : ttl;
}

/* Read one record's fixed part at *off into r (owner text, type, ...); -1 when it runs past the message. */
static int
read_rec(const uint8_t *msg, size_t len, size_t *off, struct rec *r)
{
	size_t p;
	if (read_name(msg, len, *off, r->owner, &p) < 0 || p + 10 > len)
		return -1;
	r->owner_ok = strchr(r->owner, '?') == NULL;
	r->type = get16(msg + p);
	r->class = get16(msg + p + 2);
	r->ttl = ttl_of(get32(msg + p + 4));
	r->rdlen = get16(msg + p + 8);
	r->rd = p + 10;
	if (r->rd + r->rdlen > len)
		return -1;
	*off = r->rd + r->rdlen;
	return 0;
}

/* RFC 2308 §5: a negative answer is kept for the smaller of the SOA's TTL and its MINIMUM field. */
static uint32_t
negative_ttl(const uint8_t *msg, size_t len, size_t off, unsigned nscount)
{
	struct rec r;
	char name[DNS_NAME_LEN];
	for (unsigned i = 0; i < nscount; i++) {
		if (read_rec(msg, len, &off, &r) < 0)
			return 0;
		if (r.type != DNS_T_SOA || r.class != DNS_C_IN)
			continue;
		size_t p;
		if (read_rdata_name(msg, &r, r.rd, name, &p, false) < 0 ||
		    read_rdata_name(msg, &r, p, name, &p, false) < 0 || p + 20 != r.rd + r.rdlen)
			return 0;
		uint32_t minimum = ttl_of(get32(msg + p + 16));
		return minimum < r.ttl ? minimum : r.ttl;
	}
	return 0;
}

/* Take one record of the asked type into out->rr; false when its data is malformed. */
static bool
take_rr(const uint8_t *msg, const struct rec *r, uint16_t qtype, struct dns_rr *rr)
{
	char name[DNS_NAME_LEN];
	size_t p;
	memset(rr, 0, sizeof(*rr));
	switch (qtype) {
	case DNS_T_A:
		if (r->rdlen != 4)
			return false;
		memcpy(rr->addr, msg + r->rd, 4);
		return true;
	case DNS_T_AAAA:
		if (r->rdlen != 16)
			return false;
		memcpy(rr->addr, msg + r->rd, 16);
		return true;
	case DNS_T_MX:
		if (r->rdlen < 3 || read_rdata_name(msg, r, r->rd + 2, name, &p, true) < 0)
			return false;
		rr->pref = get16(msg + r->rd);
		/* "" is the root: a null MX (RFC 7505), kept for dns.c to judge. */
		return name[0] == '\0' || dns_name_check(name, rr->name);
	default:
		return false;
	}
}

enum dns_status
dns_parse(const uint8_t *msg, size_t len, const char *qname, uint16_t qtype, struct dns_result *out)
{
	static struct rec recs[ANSWER_MAX];   /* one parse at a time: resolverd has one thread */
	char name[DNS_NAME_LEN], cur[DNS_NAME_LEN];
	size_t off = HDR_LEN;
	unsigned nrec = 0;

	out->status = DNS_TEMPFAIL;
	out->ttl = 0;
	out->n = 0;
	out->ignored = 0;
	out->why[0] = '\0';
	if (len < HDR_LEN)
		return fail(out, "answer too short");
	unsigned flags = get16(msg + 2), qd = get16(msg + 4), an = get16(msg + 6), ns = get16(msg + 8);
	unsigned rcode = flags & 0xf;
	if (!(flags & 0x8000) || ((flags >> 11) & 0xf) != 0)
		return fail(out, "not an answer to a query");
	if (qd != 1)
		return fail(out, "answer without the question");
	if (read_name(msg, len, off, name, &off) < 0 || off + 4 > len)
		return fail(out, "malformed question in the answer");
	if (strcmp(name, qname) != 0 || get16(msg + off) != qtype || get16(msg + off + 2) != DNS_C_IN)
		return fail(out, "answer to another question");
	off += 4;
	switch (rcode) {
	case 0: case 3: break;
	case 1: return fail(out, "FORMERR");
	case 2: return fail(out, "SERVFAIL");
	case 4: return fail(out, "NOTIMP");
	case 5: return fail(out, "REFUSED");
	default: return fail(out, "error answer");
	}

	for (unsigned i = 0; i < an; i++) {
		struct rec r;
		if (read_rec(msg, len, &off, &r) < 0)
			return fail(out, "malformed answer record");
		if (nrec < ANSWER_MAX)
			recs[nrec++] = r;
		else
			ignore(out, "too many answer records");
	}
	size_t ns_off = off;

	/* Follow the CNAME chain from the question's name. */
	uint32_t ttl = TTL_MAX;
	snprintf(cur, sizeof(cur), "%s", qname);
	for (unsigned depth = 0;; depth++) {
		const struct rec *cname = NULL;
		for (unsigned i = 0; i < nrec && cname == NULL; i++)
			if (recs[i].type == DNS_T_CNAME && recs[i].class == DNS_C_IN && recs[i].owner_ok &&
			    strcmp(recs[i].owner, cur) == 0)
				cname = &recs[i];
		if (cname == NULL)
			break;
		size_t p;
		if (depth >= DNS_CNAME_MAX)
			return fail(out, "CNAME chain too long");
		if (read_rdata_name(msg, cname, cname->rd, name, &p, true) < 0 ||
		    !dns_name_check(name, cur))
			return fail(out, "malformed CNAME target");
		if (cname->ttl < ttl)
			ttl = cname->ttl;
	}

	if (rcode == 3) {
		out->status = DNS_NXDOMAIN;
		out->ttl = negative_ttl(msg, len, ns_off, ns);
		return out->status;
	}
	bool any = false;
	for (unsigned i = 0; i < nrec; i++) {
		const struct rec *r = &recs[i];
		if (r->type != qtype || r->class != DNS_C_IN)
			continue;
		if (!r->owner_ok || strcmp(r->owner, cur) != 0) {
			ignore(out, "record for another name");
			continue;
		}
		any = true;
		struct dns_rr rr;
		if (!take_rr(msg, r, qtype, &rr)) {
			ignore(out, qtype == DNS_T_MX ? "MX target is not a host name" : "malformed record");
			continue;
		}
		if (r->ttl < ttl)
			ttl = r->ttl;
		if (out->n < DNS_RR_MAX) {
			out->rr[out->n++] = rr;
			continue;
		}
		/* Full: a more preferred MX takes the place of the least preferred kept; extra addresses are dropped. */
		unsigned worst = 0;
		for (unsigned k = 1; k < out->n; k++)
			if (out->rr[k].pref > out->rr[worst].pref)
				worst = k;
		if (qtype == DNS_T_MX && rr.pref < out->rr[worst].pref)
			out->rr[worst] = rr;
	}
	if (!any) {
		out->status = DNS_NODATA;
		out->ttl = negative_ttl(msg, len, ns_off, ns);
		return out->status;
	}
	/* OK even when every record was refused: MX records that exist forbid the implicit MX. */
	out->status = DNS_OK;
	out->ttl = out->n > 0 ? ttl : 0;
	return out->status;
}

void
dns_mx_order(struct dns_rr *rr, unsigned n, uint32_t (*rnd)(uint32_t bound))
{
	/* Insertion sort: stable, and n is at most DNS_RR_MAX. */
	for (unsigned i = 1; i < n; i++) {
		struct dns_rr t = rr[i];
		unsigned j = i;
		for (; j > 0 && rr[j - 1].pref > t.pref; j--)
			rr[j] = rr[j - 1];
		rr[j] = t;
	}
	for (unsigned s = 0; s < n;) {
		unsigned e = s + 1;
		while (e < n && rr[e].pref == rr[s].pref)
			e++;
		/* Fisher-Yates within [s, e). */
		for (unsigned i = e - 1; i > s; i--) {
			unsigned j = s + rnd(i - s + 1);
			if (j != i) {
				struct dns_rr t = rr[i];
				rr[i] = rr[j];
				rr[j] = t;
			}
		}
		s = e;
	}
}
