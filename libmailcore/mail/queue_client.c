/* mail/queue_client.c - to be written */
