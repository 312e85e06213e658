/*
 * fuzz_frame.c - libFuzzer target for util/msg.c and mail/envelope.c: the
 * input is a byte stream as a peer daemon could send it. Frames are
 * decoded one after another; each frame gets stand-in descriptors for its
 * MC_F_FD fields (as util/chan.c attaches them), then is read three ways:
 * field by field by kind with every getter, as a Q_SUBMIT_COMMIT envelope,
 * and as an error reply. The seeds in corpus/frame/ are frames written by
 * hand from msg.h's wire format (HELLO, RES_RCPT request and reply, an
 * error reply, an envelope, a BEGIN reply with a descriptor, a stream of
 * two frames).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/envelope.h"
#include "util/chan.h"
#include "util/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int devnull = -1;

/* Read every field by its kind until the end or the first failure. */
static void
walk(struct mc_msg *m, unsigned variant)
{
	while (mc_msg_more(m)) {
		uint8_t kind = (uint8_t)m->payload.data[m->rpos];
		uint32_t u;
		uint64_t q;
		const char *p;
		const void *bp;
		size_t n;
		char small[8], big[MC_ADDR_MAX];
		int fd, rc;
		switch (kind) {
		case MC_F_U32:
			rc = mc_msg_get_u32(m, &u);
			break;
		case MC_F_U64:
			rc = mc_msg_get_u64(m, &q);
			break;
		case MC_F_STR:
			if (variant % 3 == 0) {
				rc = mc_msg_get_strref(m, &p, &n);
				if (rc == 0 && n > 0 && memchr(p, '\0', n) != NULL)
					abort();
			} else if (variant % 3 == 1) {
				rc = mc_msg_get_str(m, small, sizeof(small));
				if (rc == 0 && strlen(small) >= sizeof(small))
					abort();
			} else {
				rc = mc_msg_get_str(m, big, sizeof(big));
			}
			break;
		case MC_F_BYTES:
			rc = mc_msg_get_bytes(m, &bp, &n);
			if (rc == 0 && n > m->payload.len)
				abort();
			break;
		case MC_F_FD:
			rc = mc_msg_get_fd(m, &fd);
			if (rc == 0)
				close(fd);
			break;
		default:
			/* An unknown kind: any getter must refuse it. */
			rc = mc_msg_get_u32(m, &u);
			if (rc == 0)
				abort();
			break;
		}
		if (rc < 0) {
			if (mc_msg_more(m) || mc_msg_end(m) == 0)
				abort();
			return;
		}
		if (m->rpos > m->payload.len)
			abort();
	}
	mc_msg_end(m);
}

/* Start reading the same frame again. */
static void
rewind_msg(struct mc_msg *m)
{
	m->rpos = 0;
	m->err = false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (devnull < 0)
		devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	size_t pos = 0;
	unsigned variant = 0;
	while (pos < size) {
		struct mc_msg m;
		size_t used = 0;
		/* A small bound now and then, as a channel may set one. */
		size_t max = (variant & 4) ? 64 : MC_MSG_MAX_PAYLOAD;
		int r = mc_msg_decode(data + pos, size - pos, max, &m, &used);
		if (r <= 0)
			break;
		if (used < MC_MSG_HDR_LEN || used > size - pos || m.payload.len != used - MC_MSG_HDR_LEN)
			abort();
		pos += used;

		int nfd = mc_msg_count_fds(&m);
		for (int i = 0; i < nfd && i < MC_MSG_MAX_FDS; i++)
			mc_msg_attach_fd(&m, dup(devnull));
		walk(&m, variant++);

		rewind_msg(&m);
		struct mc_envelope e;
		if (mc_envelope_get(&m, &e, 1000) == 0) {
			if (e.nrcpt > 1000 || strlen(e.sender) >= MC_ADDR_MAX)
				abort();
			for (uint32_t i = 0; i < e.nrcpt; i++)
				if (strlen(e.rcpt[i].addr) >= MC_ADDR_MAX ||
				    strlen(e.rcpt[i].orcpt) >= MC_DSN_PARAM_MAX)
					abort();
		}
		mc_envelope_free(&e);

		rewind_msg(&m);
		uint32_t code;
		char text[32];
		if (mc_chan_error_parse(&m, &code, text, sizeof(text)) == 0 && strlen(text) >= sizeof(text))
			abort();
		mc_msg_free(&m);
	}
	return 0;
}
