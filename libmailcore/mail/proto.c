/*
 * proto.c - the message catalogue for util/chan.c (see proto.h): type and
 * role names for logs, the allowed-sender masks, and the role check that
 * proves a peer's claimed role from its kernel credentials.
 *
 * Every process calls mc_proto_set_identities() once, before it opens a
 * channel, with its loaded config; the uids and the admin gid found then
 * stay fixed for the life of the process (a reload does not change who the
 * daemons run as). A user that does not exist leaves its role unmapped, so
 * only root and the instance's own uid may claim it. Never trusts a name a
 * peer sends: the HELLO's role is checked against SO_PEERCRED here.
 */
#include "mail/proto.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

static const uint32_t allowed_roles[MC_MSG_COUNT] = {
	[MC_MSG_NONE_] = 0,
#define X(name, roles) [MC_MSG_##name] = (roles),
	MC_MSG_LIST(X)
#undef X
};

static const char *const type_names[MC_MSG_COUNT] = {
	[MC_MSG_NONE_] = "NONE",
#define X(name, roles) [MC_MSG_##name] = #name,
	MC_MSG_LIST(X)
#undef X
};

static const char *const role_names[MC_ROLE_COUNT] = {
	[MC_ROLE_NONE] = "none",
	[MC_ROLE_SMTPD] = "smtpd",
	[MC_ROLE_QUEUED] = "queued",
	[MC_ROLE_RESOLVERD] = "resolverd",
	[MC_ROLE_POP3D] = "pop3d",
	[MC_ROLE_IMAPD] = "imapd",
	[MC_ROLE_ADMIN] = "admin",
	[MC_ROLE_SUPERVISOR] = "supervisor",
};

/* Who each role runs as, from the config; unmapped roles are left to root and our own uid. */
static struct {
	bool mapped[MC_ROLE_COUNT];
	uid_t uid[MC_ROLE_COUNT];
	bool admin_mapped;
	gid_t admin_gid;
} ids;

const char *
mc_msg_type_name(uint16_t type)
{
	if (type >= MC_MSG_COUNT)
		return "UNKNOWN";
	return type_names[type];
}

const char *
mc_role_name(uint32_t role)
{
	if (role >= MC_ROLE_COUNT)
		return "unknown";
	return role_names[role];
}

static void
map_user(enum mc_role role, const char *user)
{
	ids.mapped[role] = false;
	if (user == NULL || user[0] == '\0')
		return;
	struct passwd *pw = getpwnam(user);
	if (pw == NULL)
		return;
	ids.uid[role] = pw->pw_uid;
	ids.mapped[role] = true;
}

void
mc_proto_set_identities(const struct mc_config *cfg)
{
	map_user(MC_ROLE_SMTPD, cfg->smtpd.user);
	map_user(MC_ROLE_QUEUED, cfg->queued.user);
	map_user(MC_ROLE_RESOLVERD, cfg->resolverd.user);
	map_user(MC_ROLE_POP3D, cfg->global.mail_user);
	map_user(MC_ROLE_IMAPD, cfg->global.mail_user);
	ids.admin_mapped = false;
	if (cfg->global.admin_group[0] != '\0') {
		struct group *gr = getgrnam(cfg->global.admin_group);
		if (gr != NULL) {
			ids.admin_gid = gr->gr_gid;
			ids.admin_mapped = true;
		}
	}
}

static bool
in_admin_group(const struct mc_peer_cred *cred)
{
	if (!ids.admin_mapped)
		return false;
	if (cred->gid == ids.admin_gid)
		return true;
	for (size_t i = 0; i < cred->ngroups && i < sizeof(cred->groups) / sizeof(cred->groups[0]); i++)
		if (cred->groups[i] == ids.admin_gid)
			return true;
	return false;
}

static bool
role_ok(uint32_t role, const struct mc_peer_cred *cred)
{
	if (role == MC_ROLE_NONE || role >= MC_ROLE_COUNT)
		return false;
	/* Root may be anyone; so may our own uid, in an instance where every daemon runs as one user. */
	if (cred->uid == 0 || cred->uid == getuid())
		return true;
	switch (role) {
	case MC_ROLE_SUPERVISOR:
		return false;
	case MC_ROLE_ADMIN:
		return in_admin_group(cred);
	default:
		return ids.mapped[role] && ids.uid[role] == cred->uid;
	}
}

const struct mc_chan_proto mc_proto = {
	.version = MC_PROTO_VERSION,
	.ntypes = MC_MSG_COUNT,
	.allowed_roles = allowed_roles,
	.type_name = mc_msg_type_name,
	.role_name = mc_role_name,
	.role_ok = role_ok,
};
