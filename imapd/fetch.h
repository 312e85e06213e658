/*
 * fetch.h - what fetch.c and fetch_binary.c share: a FETCH job, its items
 * and the message being answered. Private to those two files; the rest of
 * imapd knows FETCH by imapd.h's imapd_cmd_fetch and friends.
 */
#ifndef IMAPD_FETCH_H
#define IMAPD_FETCH_H

#include "imapd/imapd.h"
#include "mail/cte.h"
#include "mail/mailstore.h"
#include "mail/mime.h"

#define ITEMS_MAX 32
#define FIELDS_MAX 1024         /* bytes of header field names of one HEADER.FIELDS */
#define CHUNK (64 * 1024)
/* Stop streaming while this much output waits for the client. */
#define FETCH_HIGH (256 * 1024)
/* A header longer than this is not searched for HEADER.FIELDS past it. */
#define HEADER_MAX (1024 * 1024)

enum fitem_kind { FI_UID, FI_FLAGS, FI_INTERNALDATE, FI_SIZE, FI_SECTION, FI_ENVELOPE, FI_BODYSTRUCTURE, FI_BODY,
		  FI_MODSEQ };
enum fsec_kind { SEC_ALL, SEC_HEADER, SEC_TEXT, SEC_FIELDS, SEC_FIELDS_NOT, SEC_MIME };
#define PATH_MAX_PARTS 16

struct fitem {
	enum fitem_kind kind;
	enum fsec_kind sec;
	bool peek;
	bool partial;
	bool binary;                   /* BINARY[p] / BINARY.PEEK[p]: decoded (RFC 3516) */
	bool bsize;                    /* BINARY.SIZE[p] */
	uint32_t origin, count;
	unsigned path[PATH_MAX_PARTS];  /* section-part: 1.2.3; none for the message itself */
	size_t npath;
	char label[FIELDS_MAX + 64];   /* "BODY[HEADER.FIELDS (FROM TO)]", "RFC822.HEADER" */
	char fields[FIELDS_MAX];       /* NUL-separated names, ends with an empty one */
};

/* The message being answered, copied out of the index row. */
struct fmsg {
	uint32_t seq, uid, flags;
	uint64_t modseq;
	uint64_t size, vsize;
	int64_t internal_date;
	char file[MC_MAILDIR_FILE_MAX + 1];
	char keywords[1024];
};

/* A section for FETCH BINARY: the file range, how to decode it, and (measured) its decoded size. */
struct imapd_binpart {
	uint64_t off, len;          /* the stored bytes */
	enum mc_cte cte;            /* MC_CTE_BINARY (as stored) for a part that is no leaf */
	bool text;                  /* a text/ part: its line ends go out as CRLF */
	uint64_t size;              /* decoded octets */
	bool nul;                   /* the window to send holds a NUL: literal8 */
};

struct imapd_fetch {
	struct fitem items[ITEMS_MAX];
	size_t nitems;
	bool uid;
	bool rev2;                    /* IMAP4rev2: RFC822, RFC822.HEADER, RFC822.TEXT are no fetch items */
	char set[4096];
	struct imap_seqset seqset;
	uint64_t next_uid;            /* where the index walk goes on */
	uint64_t last_uid;            /* the highest UID to consider */
	bool walk_stopped;            /* the last walk stopped before the index's end */
	uint64_t changedsince;        /* CONDSTORE: only messages changed after this MODSEQ; 0 = all */
	bool vanished;                /* QRESYNC: UID FETCH ... (CHANGEDSINCE n VANISHED) */
	bool in_msg;                  /* a message's response is open */
	struct fmsg m;
	size_t item;                  /* next item of the open message */
	bool first;                   /* no item of the open message written yet */
	/* the literal being streamed */
	int fd;
	uint64_t pos, end;            /* file range still to read */
	uint64_t cpos;                /* converted bytes produced */
	uint64_t wstart, wend;        /* the window to send, in converted bytes */
	char prev;                    /* the byte before pos */
	bool streaming;
	bool failed;                  /* a literal was cut short: the session must end */
	bool have_cache;              /* cache holds the open message's (ENVELOPE, BODYSTRUCTURE, parts) */
	struct mc_store_cache cache;
	bool missing;                 /* a message file was gone (expunged meanwhile) */
	/* FETCH BINARY: each BINARY item's part, measured before the message's response starts */
	struct imapd_binpart bin[ITEMS_MAX];
	int binst[ITEMS_MAX];         /* 0 measured, 1 no such part (NIL), -1 unreadable */
	bool decoding;                /* the literal streams through dec */
	bool dec_done;                /* dec's final bytes were taken */
	struct mc_cte_dec dec;
	bool unknown_cte;             /* a part's encoding is unknown: NO [UNKNOWN-CTE] at the end */
};

/* ---- fetch.c ---- */

/* Add an item of kind (once, but for sections). 0, or -1 with the parser failed. */
int imapd_fetch_add(struct imapd_fetch *f, struct imap_p *p, enum fitem_kind kind);
/* An optional "<origin.count>" after BODY[...] or BINARY[...]: sets it->partial.
 * 0, or -1 with the parser failed. */
int imapd_fetch_partial(struct imap_p *p, struct fitem *it);
/* The space before every item of a message's response but the first. */
void imapd_fetch_item_sep(struct imapd_session *s, struct imapd_fetch *f);
/* The message file, read-only: fd, or -1. */
int imapd_fetch_open_file(struct imapd_session *s, const struct fmsg *m);
/* The open message's cache (once per message): 0, or -1. */
int imapd_fetch_load_cache(struct imapd_session *s, struct imapd_fetch *f);

/* ---- fetch_binary.c ---- */

/* "BINARY[", "BINARY.PEEK[" or "BINARY.SIZE[" (the word read, at '['): the rest of the item. */
int imapd_fetch_binary_section(struct imapd_fetch *f, struct imap_p *p, bool peek, bool size);
/*
 * Before the message's response: find and measure each BINARY item's
 * part. 1 when an encoding is unknown (the message is left out), else 0.
 */
int imapd_fetch_binary_prepare(struct imapd_session *s, struct imapd_fetch *f);
/* A BINARY or BINARY.SIZE item: as start_section answers (0, 1 NIL sent, -1 nothing sent). */
int imapd_fetch_start_binary(struct imapd_session *s, struct imapd_fetch *f, const struct fitem *it);
/* Stream the decoded literal as far as the output allows; true when it is done. */
bool imapd_fetch_stream_decoded(struct imapd_session *s, struct imapd_fetch *f);
/*
 * The part sec of the message in fd (whole: BINARY[], the message
 * itself): its range and encoding from its MIME header. 0, 1 when the
 * encoding is unknown (NO [UNKNOWN-CTE]), -1 on a read error.
 */
int imapd_binary_part(int fd, const struct mc_mime_section *sec, bool whole, struct imapd_binpart *bp);
/* Decode bp once: its size, and whether decoded octets [ws, we) hold a NUL. 0, or -1 (read error). */
int imapd_binary_measure(int fd, struct imapd_binpart *bp, uint64_t ws, uint64_t we);

#endif
