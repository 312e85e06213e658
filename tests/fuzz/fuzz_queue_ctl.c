/*
 * fuzz_queue_ctl.c - libFuzzer target for mail/queue_ctl.c, the Q_CTL_*
 * payloads queued reads from the admin tool and the tool reads from
 * queued. The first input byte picks the reader, the rest is the payload
 * (with a stand-in descriptor for each MC_F_FD field, as util/chan.c
 * attaches them). Whatever a reader accepts must be within its buffers;
 * what it allocates is freed. Seeds in corpus/queue_ctl/ are payloads of
 * each kind written by hand from msg.h's wire format.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/queue_ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_entry(const struct mc_qctl_entry *e)
{
	if (strlen(e->qid) >= sizeof(e->qid) || strlen(e->sender) >= sizeof(e->sender) || e->n > e->nrcpt)
		abort();
	for (uint32_t i = 0; i < e->n; i++)
		if (strlen(e->rcpt[i].last_error) >= sizeof(e->rcpt[i].last_error))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct mc_msg m;
	mc_msg_init(&m, 1);
	if (size > 1 && mc_buf_add(&m.payload, data + 1, size - 1) < 0) {
		mc_msg_free(&m);
		return 0;
	}
	int nfds = mc_msg_count_fds(&m);
	for (int i = 0; i < nfds && i < MC_MSG_MAX_FDS; i++)
		mc_msg_attach_fd(&m, open("/dev/null", O_RDONLY | O_CLOEXEC));

	struct mc_qctl_filter f;
	struct mc_qctl_entry e;
	struct mc_qctl_show s;
	struct mc_qctl_event ev;
	struct mc_qctl_dom *d;
	char a[MC_QID_MAX], b[MC_QCTL_ERR_MAX];
	uint32_t u1, u2, u3;
	bool flag;
	switch (data[0] % 9) {
	case 0:
		mc_qctl_get_list_req(&m, &f, a, sizeof(a), &u1);
		break;
	case 1:
		if (mc_msg_get_u32(&m, &u1) == 0)
			for (uint32_t i = 0; i < u1 && mc_qctl_get_entry(&m, &e) == 0; i++) {
				check_entry(&e);
				mc_qctl_entry_free(&e);
			}
		mc_qctl_get_next(&m, a, sizeof(a));
		break;
	case 2:
		mc_qctl_get_show_req(&m, a, sizeof(a), &flag);
		break;
	case 3:
		if (mc_qctl_get_show(&m, &s) == 0) {
			check_entry(&s.e);
			if (s.body_fd >= 0)
				close(s.body_fd);
			mc_qctl_show_free(&s);
		}
		break;
	case 4:
		mc_qctl_get_summary_req(&m, &f);
		break;
	case 5:
		if (mc_qctl_get_summary(&m, &d, &u1, &u2) == 0)
			free(d);
		break;
	case 6:
		mc_qctl_get_act_req(&m, &u1, &f);
		break;
	case 7:
		if (mc_qctl_get_act_head(&m, &u1, &u2, &u3) == 0)
			for (uint32_t i = 0; i < u3 && mc_qctl_get_act_result(&m, a, sizeof(a), b, sizeof(b)) == 0; i++)
				;
		break;
	default:
		if (mc_qctl_get_event(&m, &ev) < 0)
			mc_qctl_get_pause_req(&m, &flag);
		break;
	}
	mc_msg_free(&m);
	return 0;
}
