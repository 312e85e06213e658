/* util/privdrop.c - to be written */
