/*
 * config.h - the one INI file every Postern program reads (libinih).
 *
 * Every key is described once in config.c's table (section, name, type,
 * default, where it is stored); the loader, the defaults and the error
 * messages come from that table. An unknown section or key, or a value of
 * the wrong form, is an error naming the file, the line and the key, and
 * the caller refuses to start. Relative paths are resolved against the
 * directory of the config file, or against the working directory for the
 * built-in development default (no file), and stored absolute.
 *
 * Built-in defaults are the development defaults of DESIGN.md: state under
 * ./var, unprivileged loopback ports, plaintext AUTH allowed on loopback.
 */
#ifndef MC_CONFIG_H
#define MC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MC_LISTEN_MAX 16
#define MC_PATH_MAX 1024

struct mc_listen_addr {
	struct sockaddr_storage ss;
	socklen_t sslen;
	char text[80];            /* as written, normalised: "127.0.0.1:2525", "[::1]:2525" */
};

struct mc_listen_list {
	size_t n;
	struct mc_listen_addr a[MC_LISTEN_MAX];
};

/* outbound_tls: STARTTLS never, when offered (falling back to plaintext), or always (else defer). */
enum mc_outbound_tls { MC_OUTTLS_NONE = 0, MC_OUTTLS_MAY, MC_OUTTLS_ENCRYPT };

/* allow_plaintext_auth: yes, no, or only for clients on loopback. */
enum mc_plain_auth { MC_PLAIN_NO = 0, MC_PLAIN_LOOPBACK, MC_PLAIN_YES };

struct mc_config {
	char path[MC_PATH_MAX];      /* the file read, "" for the built-in default */

	struct {
		char hostname[256];
		char state_dir[MC_PATH_MAX];
		char run_dir[MC_PATH_MAX];
		char tls_cert[MC_PATH_MAX];  /* "" before mc_config_load fills in state_dir/tls/... */
		char tls_key[MC_PATH_MAX];
		int log_level;               /* enum mc_log_level */
		char mail_user[64];          /* owner of the mail store; pop3d and imapd run as it */
		char admin_group[64];        /* may use admin commands on control sockets */
		bool tls_self_signed;        /* tls_cert was unset: make one on first start */
	} global;

	struct {
		struct mc_listen_list listen;
		struct mc_listen_list submission;
		struct mc_listen_list submissions;
		uint64_t max_message_size;   /* bytes */
		unsigned max_recipients;
		unsigned max_errors;
		unsigned max_connections;
		unsigned timeout;            /* seconds, idle between commands */
		unsigned data_timeout;       /* seconds, between data blocks */
		int allow_plaintext_auth;    /* enum mc_plain_auth */
		char user[64];
	} smtpd;

	struct {
		unsigned remote_smtp_port;
		unsigned retry_min;          /* seconds */
		unsigned retry_max;
		unsigned max_queue_lifetime;
		unsigned delay_warning_time; /* 0: no warnings */
		uint64_t min_free_space;     /* bytes kept free in the queue's file system */
		unsigned delivery_workers;
		char user[64];
		/* outbound SMTP (queued/relay.c, queued/smtpc.c) */
		unsigned outbound_family;    /* 0: any, 4: IPv4 only, 6: IPv6 only */
		int outbound_tls;            /* enum mc_outbound_tls */
		char relayhost[300];         /* as written; "" : deliver by MX */
		char relayhost_name[256];    /* parsed: host name or address literal */
		unsigned relayhost_port;     /* parsed: 0 = remote_smtp_port */
		bool relayhost_mx;           /* parsed: not in brackets, so MX records are looked up */
		char relayhost_user[256];
		char relayhost_password_file[MC_PATH_MAX];
		unsigned connect_timeout;    /* seconds */
		unsigned command_timeout;
		unsigned data_timeout;
		unsigned destination_concurrency;
		unsigned destination_rate;   /* messages per minute per destination, 0: no limit */
		unsigned connection_cache_size;   /* idle connections kept, in all */
		unsigned connection_cache_time;   /* seconds an idle connection is kept */
		unsigned connection_reuse_limit;  /* messages over one connection */
	} queued;

	struct {
		char nameservers[512];       /* "" : the system resolver configuration */
		unsigned dns_timeout;        /* seconds for one try of one query (c-ares tries twice per server) */
		unsigned dns_cache_size;     /* answers kept (entries) */
		unsigned dns_negative_ttl_max; /* seconds, the longest a "does not exist" answer is kept */
		unsigned auth_delay_after;   /* failures before answers are slowed */
		unsigned auth_block_after;   /* failures before answers are refused */
		unsigned auth_block_time;    /* seconds a blocked address or account stays blocked */
		char user[64];
	} resolverd;

	struct {
		struct mc_listen_list listen;
		struct mc_listen_list listen_tls;
		int allow_plaintext_auth;
		unsigned max_connections;
		unsigned timeout;
		unsigned max_bad_commands;   /* 0: no limit */
	} pop3d;

	struct {
		struct mc_listen_list listen;
		struct mc_listen_list listen_tls;
		int allow_plaintext_auth;
		unsigned max_connections;
		unsigned timeout;
		char hierarchy_separator;    /* '.' (Maildir++ as Dovecot) or '/': what clients see */
		unsigned processes;          /* processes serving clients; 0 (auto): one per online CPU */
	} imapd;
};

/* Upper bound of [imapd] processes. */
#define MC_CONFIG_PROCESSES_MAX 64
#define MC_CONFIG_PROCESSES_MAX_STR "64"

/* Fill cfg with the built-in development defaults (relative paths resolved against the cwd). */
int mc_config_defaults(struct mc_config *cfg, char *err, size_t errsz);

/*
 * Load path (NULL or "" = the built-in default). On error returns -1 with
 * a message such as "etc/p.conf:12: [smtpd] max_recipients: not a number: 'x'".
 */
int mc_config_load(struct mc_config *cfg, const char *path, char *err, size_t errsz);

/* Helpers shared with other parsers of the same forms. */
int mc_parse_size(const char *s, uint64_t *out);          /* 35M, 512K, 1G, 100 */
int mc_parse_duration(const char *s, unsigned *seconds);  /* 30s, 5m, 1h, 5d, 90 */
int mc_parse_bool(const char *s, bool *out);              /* yes/no, true/false, on/off, 1/0 */
/* One address "127.0.0.1:2525", "[::1]:2525", "*:25" (any IPv4+IPv6 is not implied). */
int mc_parse_listen_addr(const char *s, struct mc_listen_addr *out);
/* [resolverd] nameservers: "192.0.2.53, 127.0.0.1:5353, [::1]:5353, 2001:db8::53" (port 53 when
 * none is given); empty value = empty list (the system's resolver). -1 when an entry is not one. */
int mc_parse_nameservers(const char *s, struct mc_listen_list *out);
/* Comma-separated list; empty value = empty list. */
int mc_parse_listen_list(const char *s, struct mc_listen_list *out);

/* Path helpers for the layout under state_dir and run_dir. */
void mc_config_path(const struct mc_config *cfg, char *out, size_t outsz, const char *rel_to_state);
void mc_config_sock(const struct mc_config *cfg, char *out, size_t outsz, const char *sockname);

#endif
