/* util/tls.c - to be written */
