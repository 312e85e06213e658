/*
 * date.c - RFC 5322 and IMAP dates (see date.h).
 *
 * Calendar arithmetic is Howard Hinnant's days-from-civil algorithm, so
 * no timegm()/TZ dependence and no table of month lengths beyond the
 * validity check.
 */
#include "mail/date.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

int64_t
mc_date_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (era * 146097 + doe - 719468) * 86400;
}

static void
civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool
leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool
day_ok(int64_t y, unsigned m, unsigned d)
{
	static const unsigned char mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	return !(m == 2 && d == 29 && !leap(y));
}

static int
month_of(const char *s, size_t n)
{
	if (n < 3)
		return -1;
	for (int i = 0; i < 12; i++)
		if (strncasecmp(s, months[i], 3) == 0)
			return i + 1;
	return -1;
}

struct cur {
	const char *p, *end;
};

/* Skip blanks, folding and comments (bounded nesting). */
static void
skip_cfws(struct cur *c)
{
	int depth = 0;
	while (c->p < c->end) {
		char ch = *c->p;
		if (depth == 0 && (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')) {
			c->p++;
		} else if (ch == '(') {
			if (++depth > 32)
				return;
			c->p++;
		} else if (depth > 0) {
			if (ch == ')')
				depth--;
			else if (ch == '\\' && c->p + 1 < c->end)
				c->p++;
			c->p++;
		} else {
			return;
		}
	}
}

/* Up to max digits; -1 when none. */
static int64_t
digits(struct cur *c, int max, int *count)
{
	int64_t v = 0;
	int k = 0;
	while (c->p < c->end && k < max && *c->p >= '0' && *c->p <= '9') {
		v = v * 10 + (*c->p++ - '0');
		k++;
	}
	if (count)
		*count = k;
	return k ? v : -1;
}

static size_t
alpha_run(const struct cur *c)
{
	size_t k = 0;
	while (c->p + k < c->end && ((c->p[k] | 0x20) >= 'a' && (c->p[k] | 0x20) <= 'z'))
		k++;
	return k;
}

int
mc_date_parse_rfc5322(const char *s, size_t n, int64_t *t, int *tz_min)
{
	struct cur c = { s, s + n };
	skip_cfws(&c);
	/* optional day of week: letters, then ',' (or just whitespace in sloppy mail) */
	size_t k = alpha_run(&c);
	if (k >= 3 && month_of(c.p, k) < 0) {
		c.p += k;
		skip_cfws(&c);
		if (c.p < c.end && *c.p == ',')
			c.p++;
		skip_cfws(&c);
	}
	int64_t day = digits(&c, 2, NULL);
	if (day < 0)
		return -1;
	skip_cfws(&c);
	if (c.p < c.end && *c.p == '-')   /* "26-Nov-2026" seen in the wild */
		c.p++;
	k = alpha_run(&c);
	int mon = month_of(c.p, k);
	if (mon < 0)
		return -1;
	c.p += k;
	skip_cfws(&c);
	if (c.p < c.end && *c.p == '-')
		c.p++;
	int ny;
	int64_t year = digits(&c, 4, &ny);
	if (year < 0)
		return -1;
	if (ny == 2)
		year += year < 50 ? 2000 : 1900;
	else if (ny == 3)
		year += 1900;
	if (!day_ok(year, (unsigned)mon, (unsigned)day))
		return -1;
	skip_cfws(&c);
	int64_t hh = digits(&c, 2, NULL), mm = -1, ss = 0;
	skip_cfws(&c);
	if (hh < 0 || c.p >= c.end || *c.p != ':')
		return -1;
	c.p++;
	skip_cfws(&c);
	mm = digits(&c, 2, NULL);
	skip_cfws(&c);
	if (c.p < c.end && *c.p == ':') {
		c.p++;
		skip_cfws(&c);
		ss = digits(&c, 2, NULL);
	}
	if (mm < 0 || ss < 0 || hh > 23 || mm > 59 || ss > 60)
		return -1;
	skip_cfws(&c);
	int zone = 0;
	if (c.p < c.end && (*c.p == '+' || *c.p == '-')) {
		int sign = *c.p == '-' ? -1 : 1, nz;
		c.p++;
		int64_t z = digits(&c, 4, &nz);
		if (z < 0 || nz != 4 || z % 100 > 59)
			return -1;
		zone = sign * (int)((z / 100) * 60 + z % 100);
	} else if ((k = alpha_run(&c)) > 0) {
		static const struct {
			const char *name;
			int off;
		} zones[] = { { "UT", 0 },	  { "GMT", 0 },	   { "UTC", 0 },   { "Z", 0 },	   { "EST", -300 },
			      { "EDT", -240 }, { "CST", -360 }, { "CDT", -300 }, { "MST", -420 }, { "MDT", -360 },
			      { "PST", -480 }, { "PDT", -420 } };
		for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
			if (strlen(zones[i].name) == k && strncasecmp(c.p, zones[i].name, k) == 0)
				zone = zones[i].off;
		/* other names and military letters: +0000 (RFC 5322 4.3) */
	}
	*t = mc_date_from_civil(year, (unsigned)mon, (unsigned)day) + hh * 3600 + mm * 60 + ss - (int64_t)zone * 60;
	*tz_min = zone;
	return 0;
}

void
mc_date_format_imap(int64_t t, int tz_min, char *out)
{
	if (tz_min < -1439 || tz_min > 1439)
		tz_min = 0;
	int64_t local = t + (int64_t)tz_min * 60;
	int64_t days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
	int64_t secs = local - days * 86400;
	int64_t y;
	unsigned m, d;
	civil_from_days(days, &y, &m, &d);
	if (y < 0)
		y = 0;
	if (y > 9999)
		y = 9999;
	int a = tz_min < 0 ? -tz_min : tz_min;
	snprintf(out, MC_DATE_IMAP_LEN + 1, "%2u-%s-%04d %02d:%02d:%02d %c%02d%02d", d, months[m - 1], (int)y,
		 (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), tz_min < 0 ? '-' : '+', a / 60, a % 60);
}

/* "d-Mon-yyyy" or " d-Mon-yyyy" or "dd-Mon-yyyy" at c; day start in UTC. */
static int
parse_day(struct cur *c, int64_t *y, unsigned *m, unsigned *d)
{
	if (c->p < c->end && *c->p == ' ')
		c->p++;
	int nd;
	int64_t day = digits(c, 2, &nd);
	if (day < 0 || c->p >= c->end || *c->p != '-')
		return -1;
	c->p++;
	if (c->end - c->p < 4)
		return -1;
	int mon = month_of(c->p, 3);
	if (mon < 0 || c->p[3] != '-')
		return -1;
	c->p += 4;
	int ny;
	int64_t year = digits(c, 4, &ny);
	if (year < 0 || ny != 4 || !day_ok(year, (unsigned)mon, (unsigned)day))
		return -1;
	*y = year;
	*m = (unsigned)mon;
	*d = (unsigned)day;
	return 0;
}

int
mc_date_parse_imap_day(const char *s, size_t n, int64_t *day)
{
	struct cur c = { s, s + n };
	int64_t y;
	unsigned m, d;
	if (parse_day(&c, &y, &m, &d) < 0 || c.p != c.end)
		return -1;
	*day = mc_date_from_civil(y, m, d);
	return 0;
}

int
mc_date_parse_imap(const char *s, size_t n, int64_t *t, int *tz_min)
{
	struct cur c = { s, s + n };
	int64_t y;
	unsigned m, d;
	if (parse_day(&c, &y, &m, &d) < 0 || c.p >= c.end || *c.p++ != ' ')
		return -1;
	int k1, k2, k3, kz;
	int64_t hh = digits(&c, 2, &k1);
	if (hh < 0 || k1 != 2 || c.p >= c.end || *c.p++ != ':')
		return -1;
	int64_t mm = digits(&c, 2, &k2);
	if (mm < 0 || k2 != 2 || c.p >= c.end || *c.p++ != ':')
		return -1;
	int64_t ss = digits(&c, 2, &k3);
	if (ss < 0 || k3 != 2 || c.p >= c.end || *c.p++ != ' ')
		return -1;
	if (c.p >= c.end || (*c.p != '+' && *c.p != '-'))
		return -1;
	int sign = *c.p++ == '-' ? -1 : 1;
	int64_t z = digits(&c, 4, &kz);
	if (z < 0 || kz != 4 || c.p != c.end || hh > 23 || mm > 59 || ss > 60 || z % 100 > 59)
		return -1;
	int zone = sign * (int)((z / 100) * 60 + z % 100);
	*t = mc_date_from_civil(y, m, d) + hh * 3600 + mm * 60 + ss - (int64_t)zone * 60;
	*tz_min = zone;
	return 0;
}
