/*
 * mxask.c - ask a running instance's resolverd for mail exchangers, the
 * way queued does (mc_resolver_mx over run_dir/resolverd.sock), and print
 * each answer as one JSON line. For the integration tests
 * (tests/integration/test_dns.py) only; not installed.
 *
 *   mxask -c CONF [-f 0|4|6] [-H] [-r REPEAT] DOMAIN...
 *
 * -H: the name's own addresses, no MX lookup (MC_RESOLVER_MX_HOST_ONLY).
 *
 * Every call (REPEAT times each domain) is started before the first answer
 * is read, so identical questions are in flight together. Exit 0 when every
 * call was answered, 1 otherwise, 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "mail/proto.h"
#include "mail/resolver_client.h"
#include "util/config.h"
#include "util/log.h"

struct ask {
	const char *domain;
	bool done;
};

static unsigned answered;

static void
put_json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
	putchar('"');
}

static const char *
result_name(enum mc_mx_result r)
{
	switch (r) {
	case MC_MX_OK: return "ok";
	case MC_MX_TEMPFAIL: return "tempfail";
	case MC_MX_NXDOMAIN: return "nxdomain";
	case MC_MX_NULLMX: return "nullmx";
	case MC_MX_NOHOST: return "nohost";
	}
	return "?";
}

static void
on_mx(void *arg, enum mc_mx_result r, const char *detail, const struct mc_mx_host *hosts, unsigned n)
{
	struct ask *a = arg;
	a->done = true;
	answered++;
	printf("{\"domain\": ");
	put_json_str(a->domain);
	printf(", \"result\": \"%s\", \"detail\": ", result_name(r));
	put_json_str(detail);
	printf(", \"hosts\": [");
	for (unsigned i = 0; i < n; i++) {
		printf("%s{\"name\": ", i ? ", " : "");
		put_json_str(hosts[i].name);
		printf(", \"pref\": %u, \"addrs\": [", hosts[i].pref);
		for (unsigned j = 0; j < hosts[i].naddr; j++) {
			printf("%s", j ? ", " : "");
			put_json_str(hosts[i].addrs[j]);
		}
		printf("]}");
	}
	printf("]}\n");
	fflush(stdout);
}

static void
tick(uv_timer_t *t)
{
}

int
main(int argc, char **argv)
{
	const char *conf = NULL;
	int family = 0, repeat = 1, host_only = 0, c;
	while ((c = getopt(argc, argv, "c:f:r:H")) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'f': family = atoi(optarg); break;
		case 'r': repeat = atoi(optarg); break;
		case 'H': host_only = MC_RESOLVER_MX_HOST_ONLY; break;
		default: return 2;
		}
	}
	if (conf == NULL || optind >= argc || repeat < 1 || repeat > 1000) {
		fprintf(stderr, "usage: mxask -c CONF [-f 0|4|6] [-H] [-r REPEAT] DOMAIN...\n");
		return 2;
	}
	mc_log_init("mxask", MC_LOG_WARNING);
	struct mc_config cfg;
	char err[1024];
	if (mc_config_load(&cfg, conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "mxask: %s\n", err);
		return 1;
	}
	mc_proto_set_identities(&cfg);
	uv_loop_t loop;
	uv_loop_init(&loop);
	uv_timer_t t;
	uv_timer_init(&loop, &t);
	uv_timer_start(&t, tick, 10, 10);
	struct mc_resolver *r = mc_resolver_open(&loop, &cfg, MC_ROLE_QUEUED, "mxask");
	if (r == NULL) {
		fprintf(stderr, "mxask: cannot open the resolverd client\n");
		return 1;
	}
	uint64_t end = uv_now(&loop) + 10000;
	while (!mc_resolver_is_up(r) && uv_now(&loop) < end)
		uv_run(&loop, UV_RUN_ONCE);
	if (!mc_resolver_is_up(r)) {
		fprintf(stderr, "mxask: resolverd is not answering\n");
		return 1;
	}
	unsigned total = (unsigned)(argc - optind) * (unsigned)repeat;
	struct ask *asks = calloc(total, sizeof(*asks));
	unsigned k = 0;
	for (int i = optind; i < argc; i++)
		for (int j = 0; j < repeat; j++) {
			asks[k].domain = argv[i];
			mc_resolver_mx(r, argv[i], family | host_only, on_mx, &asks[k]);
			k++;
		}
	end = uv_now(&loop) + 120000;
	while (answered < total && uv_now(&loop) < end)
		uv_run(&loop, UV_RUN_ONCE);
	mc_resolver_close(r);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	free(asks);
	return answered == total ? 0 : 1;
}
