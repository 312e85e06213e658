/* mail/addr.c - to be written */
