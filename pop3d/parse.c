/*
 * parse.c - the POP3 command line parser (see parse.h).
 *
 * Called by commands.c for every line a client sends in AUTHORIZATION and
 * TRANSACTION state (SASL continuation lines go to mail/sasl instead).
 * Owns nothing; writes only NULs into the caller's line.
 */
#include "pop3d/parse.h"

#include <string.h>
#include <strings.h>

static const char *const names[POP3_VERB_COUNT] = {
	[POP3_UNKNOWN] = "",  [POP3_USER] = "USER", [POP3_PASS] = "PASS", [POP3_APOP] = "APOP",
	[POP3_AUTH] = "AUTH", [POP3_STLS] = "STLS", [POP3_CAPA] = "CAPA", [POP3_QUIT] = "QUIT",
	[POP3_STAT] = "STAT", [POP3_LIST] = "LIST", [POP3_RETR] = "RETR", [POP3_DELE] = "DELE",
	[POP3_NOOP] = "NOOP", [POP3_RSET] = "RSET", [POP3_TOP] = "TOP",   [POP3_UIDL] = "UIDL",
};

const char *
pop3_verb_name(enum pop3_verb v)
{
	return (unsigned)v < POP3_VERB_COUNT ? names[v] : "";
}

enum pop3_parse_result
pop3_parse(char *line, size_t len, struct pop3_cmd *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->name = "";
	if (len == 0)
		return POP3_PARSE_EMPTY;
	if (memchr(line, '\0', len) != NULL)
		return POP3_PARSE_NUL;
	line[len] = '\0';
	size_t kw = strcspn(line, " ");
	if (kw < 3 || kw > 4)
		return POP3_PARSE_UNKNOWN;
	for (int v = 1; v < POP3_VERB_COUNT; v++) {
		if (strlen(names[v]) == kw && strncasecmp(line, names[v], kw) == 0) {
			cmd->verb = (enum pop3_verb)v;
			cmd->name = names[v];
			break;
		}
	}
	if (cmd->verb == POP3_UNKNOWN)
		return POP3_PARSE_UNKNOWN;
	if (line[kw] == '\0')
		return POP3_PARSE_OK;
	char *p = line + kw + 1;
	if (cmd->verb == POP3_PASS) {
		/* RFC 1939 §7: the password may contain spaces; it is the rest of the line. */
		cmd->rest = p;
		cmd->args[0] = p;
		cmd->nargs = 1;
		return *p ? POP3_PARSE_OK : POP3_PARSE_SYNTAX;
	}
	while (*p) {
		if (cmd->nargs == POP3_ARGS_MAX)
			return POP3_PARSE_SYNTAX;
		char *sp = strchr(p, ' ');
		size_t n = sp ? (size_t)(sp - p) : strlen(p);
		/* An empty argument (two spaces, a trailing space) is a syntax error. */
		if (n == 0)
			return POP3_PARSE_SYNTAX;
		/* User names (addresses) and SASL responses may be longer than RFC 2449's 40 octets. */
		if (n > POP3_ARG_MAX && cmd->verb != POP3_USER && cmd->verb != POP3_APOP &&
		    !(cmd->verb == POP3_AUTH && cmd->nargs == 1))
			return POP3_PARSE_SYNTAX;
		cmd->args[cmd->nargs++] = p;
		if (sp == NULL)
			break;
		*sp = '\0';
		p = sp + 1;
		if (*p == '\0')
			return POP3_PARSE_SYNTAX;
	}
	return POP3_PARSE_OK;
}

int
pop3_parse_number(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	size_t n = 0;
	for (; s[n]; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 10)
			return -1;
		v = v * 10 + (uint64_t)(s[n] - '0');
	}
	if (n == 0 || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}
