/* mail/dotstuff.c - to be written */
