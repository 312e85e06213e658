/* mail/directory.c - to be written */
