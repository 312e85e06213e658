/*
 * fuzz_maildir_name.c - Maildir file names as a reindex reads them back
 * from disk (other tools may have written them): mc_maildir_name_parse
 * must stay inside the name, never overflow a number, and describe a base
 * that is a prefix of the name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/mailstore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[MC_MAILDIR_FILE_MAX + 2];
	if (size > sizeof(name) - 1)
		size = sizeof(name) - 1;
	memcpy(name, data, size);
	name[size] = '\0';
	struct mc_maildir_name mn;
	if (mc_maildir_name_parse(name, &mn) == 0) {
		size_t len = strlen(name);
		if (mn.baselen == 0 || mn.baselen > len || mn.usec >= 1000000)
			abort();
		if (mn.has_info && name[mn.baselen] != ':')
			abort();
	}
	return 0;
}
