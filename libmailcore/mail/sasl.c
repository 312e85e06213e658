/*
 * sasl.c - SASL PLAIN and LOGIN decoding for smtpd, pop3d and imapd (see sasl.h).
 *
 * Base64 is OpenSSL's EVP_DecodeBlock, with the alphabet and padding
 * checked here first (EVP_DecodeBlock skips blanks and ignores what '='
 * means). Owns nothing; never logs what it decodes.
 */
#include "mail/sasl.h"

#include <openssl/evp.h>
#include <string.h>

static int
b64char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int
mc_sasl_b64decode(const char *in, size_t inlen, unsigned char *out, size_t outsz, size_t *outlen)
{
	if (inlen % 4 != 0 || inlen / 4 * 3 > outsz || inlen > MC_SASL_LINE_MAX)
		return -1;
	if (inlen == 0) {
		*outlen = 0;
		return 0;
	}
	size_t pad = 0;
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '=') {
			if (i < inlen - 2)
				return -1;
			pad++;
		} else if (pad || !b64char(c)) {
			return -1;
		}
	}
	int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)inlen);
	if (n < 0 || (size_t)n < pad)
		return -1;
	*outlen = (size_t)n - pad;
	return 0;
}

enum mc_sasl_result
mc_sasl_response(const char *line, size_t len, unsigned char *out, size_t outsz, size_t *outlen)
{
	*outlen = 0;
	if (outsz == 0)
		return MC_SASL_BAD;
	out[0] = '\0';
	if (len == 1 && line[0] == '*')
		return MC_SASL_ABORT;
	if (len == 1 && line[0] == '=')
		return MC_SASL_OK;
	if (mc_sasl_b64decode(line, len, out, outsz - 1, outlen) < 0)
		return MC_SASL_BAD;
	out[*outlen] = '\0';
	return MC_SASL_OK;
}

enum mc_sasl_result
mc_sasl_plain(unsigned char *msg, size_t n, const char **user, const char **pass)
{
	unsigned char *nul1 = memchr(msg, '\0', n);
	unsigned char *nul2 = nul1 ? memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - msg)) : NULL;
	if (nul1 == NULL || nul2 == NULL || memchr(nul2 + 1, '\0', n - (size_t)(nul2 + 1 - msg)) != NULL)
		return MC_SASL_BAD;
	msg[n] = '\0';
	const char *authz = (const char *)msg;
	*user = (const char *)nul1 + 1;
	*pass = (const char *)nul2 + 1;
	if ((*user)[0] == '\0' || (authz[0] && strcmp(authz, *user) != 0))
		return MC_SASL_REFUSED;
	return MC_SASL_OK;
}
