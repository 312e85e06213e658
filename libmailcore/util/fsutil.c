/* util/fsutil.c - to be written */
