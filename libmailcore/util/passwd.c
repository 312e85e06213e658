/* util/passwd.c - to be written */
