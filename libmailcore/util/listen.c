/* util/listen.c - to be written */
