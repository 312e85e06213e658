/* util/msg.c - to be written */
