/* mail/daemon.c - to be written */
