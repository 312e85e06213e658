/*
 * dns.h - the parts of resolverd's DNS (dns.c) that need no event loop,
 * declared for the unit tests: ordering mail exchangers. The loop-facing entry points (dns_init,
 * dns_request, ...) are in resolverd.h with the other request handlers.
 */
#ifndef RESOLVERD_DNS_H
#define RESOLVERD_DNS_H

#include <ares.h>
#include <stddef.h>
#include <stdint.h>

#include "resolverd/dnsmsg.h"

/*
 * Put MX records in the order to try: preference ascending, records of
 * equal preference in a random order (RFC 5321 §5.1), drawn with
 * rnd(bound) in [0, bound) so tests can fix it.
 */
void dns_mx_order(struct dns_rr *rr, unsigned n, uint32_t (*rnd)(uint32_t bound));

#endif
