/*
 * parse.h - the POP3 command line parser (RFC 1939 §3, RFC 2449 §3):
 * a keyword of 3 or 4 letters (case-insensitive), then arguments
 * separated by single spaces, each at most 40 octets.
 *
 * Pure and bounded: no allocation, no I/O, never reads past len; fuzzed
 * by tests/fuzz/fuzz_pop3_cmd.c. Used by pop3d/commands.c and its tests.
 */
#ifndef POP3D_PARSE_H
#define POP3D_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest command line accepted (RFC 2449 §4 says 255 octets; AUTH's initial response may need more). */
#define POP3_LINE_MAX 1024
#define POP3_ARGS_MAX 2
/* RFC 2449 §4: each argument up to 40 octets; user names (USER, APOP), AUTH's initial response and PASS are exempt. */
#define POP3_ARG_MAX 40

enum pop3_verb {
	POP3_UNKNOWN = 0,
	POP3_USER, POP3_PASS, POP3_APOP, POP3_AUTH, POP3_STLS, POP3_CAPA, POP3_QUIT,
	POP3_STAT, POP3_LIST, POP3_RETR, POP3_DELE, POP3_NOOP, POP3_RSET, POP3_TOP, POP3_UIDL,
	POP3_VERB_COUNT
};

struct pop3_cmd {
	enum pop3_verb verb;
	const char *name;            /* the keyword as the table spells it ("USER"), "" when unknown */
	size_t nargs;
	const char *args[POP3_ARGS_MAX];   /* point into the caller's line (NUL-terminated by the parser) */
	const char *rest;            /* PASS: everything after "PASS " (a password may hold spaces) */
};

enum pop3_parse_result {
	POP3_PARSE_OK = 0,
	POP3_PARSE_EMPTY,            /* an empty line */
	POP3_PARSE_NUL,              /* a NUL byte in the line */
	POP3_PARSE_UNKNOWN,          /* not a command we know */
	POP3_PARSE_SYNTAX,           /* bad arguments: too many, too long, two spaces */
};

/* Parse line[0..len) (line[len] must be writable; spaces become NULs). */
enum pop3_parse_result pop3_parse(char *line, size_t len, struct pop3_cmd *cmd);
/*
 * A message number or line count: decimal digits only, no sign, at most
 * 10 digits, value <= max. -1 when it is not one.
 */
int pop3_parse_number(const char *s, uint32_t max, uint32_t *out);
/* The keyword of a verb, "" for POP3_UNKNOWN. */
const char *pop3_verb_name(enum pop3_verb v);

#endif
