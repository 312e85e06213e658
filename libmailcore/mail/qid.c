/* mail/qid.c - to be written */
