/* mail/resolver_client.c - to be written */
