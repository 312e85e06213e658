/* mail/mailstore.c - to be written */
