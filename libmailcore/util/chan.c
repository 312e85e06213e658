/* util/chan.c - to be written */
