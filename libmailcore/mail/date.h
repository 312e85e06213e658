/*
 * date.h - dates in mail: RFC 5322 Date: headers (with the obsolete forms
 * of RFC 5322 section 4.3 that real mail still carries) and IMAP's
 * date-time and date (RFC 3501 section 9).
 *
 * Who calls it: the index cache (Date: as a time for SEARCH SENTBEFORE and
 * SORT DATE), imapd (INTERNALDATE, APPEND dates, SEARCH dates). Pure
 * functions: no allocation, no time zone of the process consulted (all
 * arithmetic is done in UTC with the offset the text gives), nothing read
 * past the given length.
 */
#ifndef MC_DATE_H
#define MC_DATE_H

#include <stddef.h>
#include <stdint.h>

/* "dd-Mon-yyyy hh:mm:ss +zzzz" with a leading space for one-digit days. */
#define MC_DATE_IMAP_LEN 26

/*
 * Parse an RFC 5322 date: optional day of week, day, month name, year
 * (two digits: 00-49 are 20xx, 50-99 are 19xx; three digits add 1900),
 * hh:mm[:ss], zone as +hhmm/-hhmm, UT/GMT/EST...PDT, military letters
 * (taken as +0000, RFC 5322 4.3) or missing (+0000). Comments allowed.
 * *t is UTC seconds, *tz_min the zone offset in minutes. 0, or -1.
 */
int mc_date_parse_rfc5322(const char *s, size_t n, int64_t *t, int *tz_min);

/* Write t as IMAP date-time in zone tz_min ("26-Nov-2026 10:00:00 +0000"); out must hold MC_DATE_IMAP_LEN + 1. */
void mc_date_format_imap(int64_t t, int tz_min, char *out);

/* Parse an IMAP date-time (without the quotes). 0 with *t (UTC) and *tz_min, or -1. */
int mc_date_parse_imap(const char *s, size_t n, int64_t *t, int *tz_min);

/*
 * Parse an IMAP SEARCH date "1-Feb-1994" (without quotes): *day is that
 * day's start as UTC seconds (RFC 3501 compares dates, disregarding time
 * and zone). 0, or -1.
 */
int mc_date_parse_imap_day(const char *s, size_t n, int64_t *day);

/* The UTC seconds of year-month-day 00:00:00 (month 1..12); no range check beyond the arithmetic. */
int64_t mc_date_from_civil(int64_t y, unsigned m, unsigned d);

#endif
