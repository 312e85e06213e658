/*
 * fuzz_mimetext.c - libFuzzer target for mail/mimetext.c: an arbitrary
 * message in a memory file, walked for its decoded text (MIME parser,
 * encoded words, base64 and quoted-printable, iconv with characters cut
 * across reads). Every piece must lie inside the bounds the callback was
 * given, and the walk must end.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mail/mimetext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
piece(void *arg, const char *s, size_t n, bool cont)
{
	size_t *total = arg;
	/* touch every byte, so ASan sees a piece that is not what it claims */
	unsigned x = 0;
	for (size_t i = 0; i < n; i++)
		x += (unsigned char)s[i];
	*total += n + (x & 0) + (cont ? 0 : 1);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 256 * 1024)
		return 0;
	int fd = memfd_create("fuzz_mimetext", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	size_t total = 0;
	if (mc_mimetext_scan(fd, MC_MIMETEXT_HEADER | MC_MIMETEXT_BODY, piece, &total) != 0)
		abort();
	close(fd);
	return 0;
}
