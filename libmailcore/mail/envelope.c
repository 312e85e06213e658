/* mail/envelope.c - to be written */
