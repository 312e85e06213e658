/*
 * hex.h - the value of one hexadecimal digit, for the decoders that read
 * %XX, =XX and +XX escapes (header.c: RFC 2047 Q words and RFC 2231
 * values; cte.c: quoted-printable; dsn.c: RFC 3461 xtext).
 *
 * Header-only so that every decoder inlines it; the one place the digit
 * rules live. Never allocates, never looks at more than the one byte.
 */
#ifndef MC_HEX_H
#define MC_HEX_H

/* 0..15 for 0-9, a-f, A-F; -1 for any other byte (so a caller can test
 * ">= 0" before combining two digits). */
static inline int
mc_hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

#endif
