/* util/conn.c - to be written */
