/*
 * cmd_mailbox.c - `postern mailbox reindex USER`: bring a user's index in
 * line with the Maildir files (mail/mailstore.h).
 *
 * Called by main.c's command table; works without a running instance.
 * Started as root it becomes the mail store's user first ([global]
 * mail_user), so the index and its WAL files keep the owner the daemons
 * expect. Opening the store already rebuilds an index that is missing or
 * corrupt; the reindex then follows files that other tools added, moved
 * or removed. UIDs of known files are kept; nothing is ever deleted but
 * index rows of files that are gone.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "mail/directory.h"
#include "mail/mailstore.h"
#include "postern.h"
#include "util/privdrop.h"

static int
usage(void)
{
	fprintf(stderr, "usage: postern mailbox reindex USER [--json]\n");
	return POSTERN_USAGE;
}

static void
json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

int
cmd_mailbox(struct postern_ctx *ctx, int argc, char **argv)
{
	const char *user = NULL;
	bool json = ctx->json;
	if (argc < 2 || strcmp(argv[1], "reindex") != 0)
		return usage();
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (user == NULL && argv[i][0] != '-')
			user = argv[i];
		else
			return usage();
	}
	if (user == NULL)
		return usage();

	char path[MC_PATH_MAX + 600], err[512];
	if (mc_dir_mailbox_path(&ctx->cfg, user, path, sizeof(path)) < 0) {
		fprintf(stderr, "postern: not a user address: %s\n", user);
		return POSTERN_FAIL;
	}
	if (mc_privdrop_is_root()) {
		struct mc_ids ids;
		if (mc_privdrop_lookup(ctx->cfg.global.mail_user, NULL, &ids, err, sizeof(err)) < 0 ||
		    mc_privdrop(&ids, err, sizeof(err)) < 0) {
			fprintf(stderr, "postern: %s\n", err);
			return POSTERN_FAIL;
		}
	}
	umask(007);

	struct stat sb;
	if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "postern: %s has no mailbox yet (%s)\n", user, path);
		return POSTERN_FAIL;
	}
	struct mc_store *s = mc_store_open(path, 0, err, sizeof(err));
	if (s == NULL) {
		fprintf(stderr, "postern: %s\n", err);
		return POSTERN_FAIL;
	}
	struct mc_store_reindex_stats st;
	int r = mc_store_reindex(s, &st, err, sizeof(err));
	mc_store_close(s);
	if (r < 0) {
		fprintf(stderr, "postern: %s\n", err);
		return POSTERN_FAIL;
	}
	if (json) {
		printf("{\"user\":");
		json_str(user);
		printf(",\"path\":");
		json_str(path);
		printf(",\"mailboxes\":%u,\"kept\":%u,\"added\":%u,\"removed\":%u}\n", st.mailboxes, st.kept, st.added,
		       st.removed);
	} else {
		printf("%s: reindexed %u mailbox%s: %u message%s kept their UID, %u added, %u removed\n", user,
		       st.mailboxes, st.mailboxes == 1 ? "" : "es", st.kept, st.kept == 1 ? "" : "s", st.added,
		       st.removed);
	}
	return POSTERN_OK;
}
