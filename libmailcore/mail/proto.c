/* mail/proto.c - to be written */
