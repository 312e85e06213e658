"""
test_imap_rev2.py - imapd's SEARCHRES (RFC 5182), \\Recent between
sessions (RFC 3501 2.3.2), and IMAP4rev2 (RFC 9051) after ENABLE, against
a real instance over plain sockets: what a client sends, what it must see.
"""
import re
import time

from harness import PASSWORDS
from imapraw import Raw
from test_imap import ALICE, deliver


class Session(Raw):
    """A logged-in raw session; cmd() runs one command and returns (untagged lines, tagged line)."""

    def __init__(self, inst):
        super().__init__(inst.ports["imap"])
        self.n = 0
        _, ok = self.cmd(f'LOGIN "{ALICE}" "{PASSWORDS[ALICE]}"')
        assert ok.startswith("OK"), ok

    def cmd(self, text):
        self.n += 1
        tag = f"t{self.n}"
        self.send(f"{tag} {text}\r\n".encode())
        lines = [ln.decode() for ln in self.until_tagged(tag.encode())]
        return lines[:-1], lines[-1][len(tag) + 1:]

    def ok(self, text):
        untagged, tagged = self.cmd(text)
        assert tagged.startswith("OK"), (text, untagged, tagged)
        return untagged


def fetched(lines, what="UID"):
    """{seq: value of what} from '* n FETCH (... what v ...)' lines."""
    out = {}
    for ln in lines:
        m = re.match(r"\* (\d+) FETCH \((.*)\)$", ln)
        if m:
            v = re.search(what + r" (\([^)]*\)|\S+)", m.group(2))
            out[int(m.group(1))] = v.group(1) if v else None
    return out


def wait_exists(s, n):
    """NOOP until '* n EXISTS' (the index row commits a moment after delivery); the untagged lines seen."""
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        seen += s.ok("NOOP")
        if f"* {n} EXISTS" in seen:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"no * {n} EXISTS in {seen}")


# ---- SEARCHRES ----

def test_searchres_fetch_store_copy_move(inst):
    deliver(inst, 2, subject="keep")
    deliver(inst, 2, subject="drop")
    s = Session(inst)
    assert "SEARCHRES" in s.ok("CAPABILITY")[0].split()
    s.ok("SELECT INBOX")
    # SAVE alone: no ESEARCH, no SEARCH, only OK
    assert s.ok("SEARCH RETURN (SAVE) SUBJECT keep") == []
    assert sorted(fetched(s.ok("FETCH $ (UID)"))) == [1, 2]
    assert sorted(fetched(s.ok("UID FETCH $ (FLAGS)"))) == [1, 2]
    # STORE $ and what it changed
    s.ok(r"STORE $ +FLAGS.SILENT (\Flagged)")
    flags = fetched(s.ok("FETCH 1:4 (FLAGS)"), "FLAGS")
    assert [k for k, v in sorted(flags.items()) if "\\Flagged" in v] == [1, 2]
    # SEARCH with $ and UID $
    assert s.ok("SEARCH $ NOT SUBJECT drop") == ["* SEARCH 1 2"]
    assert s.ok("UID SEARCH UID $") == ["* SEARCH 1 2"]
    assert s.ok("SEARCH NOT $") == ["* SEARCH 3 4"]
    # COPY $ answers COPYUID for the saved UIDs
    _, tagged = s.cmd("COPY $ Archive")
    assert re.match(r"OK \[COPYUID \d+ 1:2 (1:2|1,2)\]", tagged), tagged
    # a new saved result from a UID SEARCH, then MOVE $
    assert s.ok("UID SEARCH RETURN (SAVE) SUBJECT drop") == []
    untagged, tagged = s.cmd("UID MOVE $ Trash")
    assert tagged.startswith("OK") and any(ln.startswith("* OK [COPYUID") for ln in untagged), (untagged, tagged)
    assert untagged.count("* 3 EXPUNGE") == 2, untagged
    # moved messages left the saved result: "$" is empty, FETCH $ answers OK and nothing
    assert s.ok("FETCH $ (UID)") == []
    assert s.ok("UID FETCH $ (UID)") == []
    assert "* STATUS \"Trash\" (MESSAGES 2)" in s.ok("STATUS Trash (MESSAGES)")
    assert "* STATUS \"Archive\" (MESSAGES 2)" in s.ok("STATUS Archive (MESSAGES)")


def test_searchres_expunge_and_min_max(inst):
    deliver(inst, 5, subject="m")
    s = Session(inst)
    s.ok("SELECT INBOX")
    # MIN and MAX with SAVE: answered and saved, nothing in between
    untagged = s.ok("SEARCH RETURN (SAVE MIN MAX) ALL")
    assert untagged == [f'* ESEARCH (TAG "t{s.n}") MIN 1 MAX 5'], untagged
    assert sorted(fetched(s.ok("FETCH $ (UID)"))) == [1, 5]
    # COUNT with SAVE saves every match
    assert s.ok("UID SEARCH RETURN (COUNT SAVE) 2:4")[0].endswith("UID COUNT 3")
    assert sorted(fetched(s.ok("FETCH $ (UID)"))) == [2, 3, 4]
    # "1,$" is a set; "$,1" is not (RFC 5182: "$" ends a set)
    assert sorted(fetched(s.ok("FETCH 1,$ (UID)"))) == [1, 2, 3, 4]
    _, tagged = s.cmd("FETCH $,1 (UID)")
    assert tagged.startswith("BAD"), tagged
    # UID EXPUNGE $ expunges what of $ carries \Deleted
    s.ok(r"STORE 1:5 +FLAGS.SILENT (\Deleted)")
    untagged = s.ok("UID EXPUNGE $")
    assert untagged.count("* 2 EXPUNGE") == 3, untagged
    assert s.ok("SEARCH ALL") == ["* SEARCH 1 2"]
    assert s.ok("SEARCH $") == ["* SEARCH"]


def test_searchres_reset_and_failure(inst):
    deliver(inst, 3, subject="r")
    s = Session(inst)
    s.ok("SELECT INBOX")
    s.ok("SEARCH RETURN (SAVE) ALL")
    assert len(fetched(s.ok("FETCH $ (UID)"))) == 3
    # pipelined: SEARCH (SAVE) and the commands using "$" in one write, run in order
    s.send(b"p1 SEARCH RETURN (SAVE) 2\r\np2 FETCH $ (UID)\r\np3 STORE $ +FLAGS (\\Seen)\r\n")
    lines = [ln.decode() for ln in s.until_tagged(b"p3")]
    assert "p1 OK" in "\n".join(lines) and "p2 OK" in "\n".join(lines)
    fetches = [ln for ln in lines if ln.startswith("* ") and "FETCH" in ln]
    assert fetches[0] == "* 2 FETCH (UID 2)" and len(fetches) == 2, lines
    assert fetches[1].startswith("* 2 FETCH (FLAGS (") and "\\Seen" in fetches[1], lines
    # a SEARCH (SAVE) that fails saves the empty set
    _, tagged = s.cmd("SEARCH RETURN (SAVE) CHARSET KOI8-R SUBJECT x")
    assert tagged.startswith("NO [BADCHARSET"), tagged
    assert s.ok("FETCH $ (UID)") == []
    _, tagged = s.cmd("SEARCH RETURN (SAVE) NOSUCHKEY")
    assert tagged.startswith("BAD"), tagged
    assert s.ok("FETCH $ (UID)") == []
    # SELECT, EXAMINE, UNSELECT and CLOSE reset it
    for reset in ("SELECT INBOX", "EXAMINE INBOX", "UNSELECT", "CLOSE"):
        s.ok("SELECT INBOX")
        s.ok("SEARCH RETURN (SAVE) ALL")
        s.ok(reset)
        if reset in ("UNSELECT", "CLOSE"):
            _, tagged = s.cmd("FETCH $ (UID)")
            assert tagged.startswith("BAD"), tagged     # no mailbox selected
            s.ok("SELECT INBOX")
        assert s.ok("FETCH $ (UID)") == [], reset
    # without a selected mailbox "$" means nothing
    s.ok("UNSELECT")
    _, tagged = s.cmd("STORE $ +FLAGS (\\Seen)")
    assert tagged.startswith("BAD"), tagged


# ---- \Recent (IMAP4rev1) ----

def test_recent_first_session_only(inst):
    deliver(inst, 2, subject="new")
    x = Session(inst)
    assert "* STATUS \"INBOX\" (RECENT 2 MESSAGES 2)" in x.ok("STATUS INBOX (RECENT MESSAGES)")
    # EXAMINE sees them recent and leaves them so (RFC 3501 6.3.2)
    assert "* 2 RECENT" in x.ok("EXAMINE INBOX")
    assert "\\Recent" in fetched(x.ok("FETCH 1 (FLAGS)"), "FLAGS")[1]
    a, b = Session(inst), Session(inst)
    untagged = a.ok("SELECT INBOX")
    assert "* 2 EXISTS" in untagged and "* 2 RECENT" in untagged, untagged
    flags = fetched(a.ok("FETCH 1:* (FLAGS)"), "FLAGS")
    assert all(v.startswith("(\\Recent") for v in flags.values()), flags
    assert a.ok("SEARCH RECENT") == ["* SEARCH 1 2"]
    assert a.ok("SEARCH NEW") == ["* SEARCH 1 2"]
    assert a.ok("SEARCH OLD") == ["* SEARCH"]
    # b comes second: nothing is recent to it
    untagged = b.ok("SELECT INBOX")
    assert "* 0 RECENT" in untagged, untagged
    assert not any("\\Recent" in v for v in fetched(b.ok("FETCH 1:* (FLAGS)"), "FLAGS").values())
    assert b.ok("SEARCH RECENT") == ["* SEARCH"]
    assert b.ok("SEARCH OLD") == ["* SEARCH 1 2"]
    assert "* STATUS \"INBOX\" (RECENT 0)" in x.ok("STATUS INBOX (RECENT)")
    # \Recent cannot be stored: b asks, nothing changes
    b.ok(r"STORE 1 +FLAGS (\Recent \Seen)")
    assert fetched(b.ok("FETCH 1 (FLAGS)"), "FLAGS")[1] == "(\\Seen)"
    # a new delivery: b is told first and gets it recent; a then sees it without \Recent
    deliver(inst, 1, subject="newer")
    seen = wait_exists(b, 3)
    assert "* 1 RECENT" in seen, seen
    assert fetched(b.ok("FETCH 3 (FLAGS)"), "FLAGS")[3] == "(\\Recent)"
    seen = wait_exists(a, 3)
    assert "* 2 RECENT" in seen, seen
    assert a.ok("SEARCH RECENT") == ["* SEARCH 1 2"]
    # the next session of all: none recent
    c = Session(inst)
    assert "* 0 RECENT" in c.ok("SELECT INBOX")
    for ses in (a, b, c, x):
        ses.ok("LOGOUT")


def test_recent_copy(inst):
    deliver(inst, 1, subject="c")
    a = Session(inst)
    a.ok("SELECT INBOX")
    a.ok("COPY 1 Archive")
    # a copy is recent in its new mailbox (RFC 3501 6.4.7) to the first who selects it
    assert "* 1 RECENT" in a.ok("SELECT Archive")
    assert "* 0 RECENT" in Session(inst).ok("EXAMINE Archive")


# ---- IMAP4rev2 (RFC 9051) after ENABLE ----

def rev2_session(inst):
    s = Session(inst)
    caps = s.ok("CAPABILITY")[0].split()
    assert "IMAP4rev1" in caps and "IMAP4rev2" in caps, caps
    assert s.ok("ENABLE IMAP4rev2") == ["* ENABLED IMAP4rev2"]
    return s


def test_rev2_enable_select_search(inst):
    deliver(inst, 3, subject="two")
    s = rev2_session(inst)
    assert s.ok("ENABLE IMAP4rev2") == ["* ENABLED"]          # already on: nothing newly enabled
    untagged = s.ok("SELECT inbox")
    # RFC 9051 6.3.2: no RECENT, no [UNSEEN]; a LIST of the mailbox, with OLDNAME for the name as given
    assert "* 3 EXISTS" in untagged, untagged
    assert not any("RECENT" in ln or "[UNSEEN" in ln for ln in untagged), untagged
    assert '* LIST (\\HasNoChildren) "." "INBOX" ("OLDNAME" ("inbox"))' in untagged, untagged
    assert any(ln.startswith("* OK [UIDNEXT 4]") for ln in untagged), untagged
    # the first session, yet no \Recent (and the messages are not recent to a later IMAP4rev1 session)
    assert not any("\\Recent" in v for v in fetched(s.ok("FETCH 1:* (FLAGS)"), "FLAGS").values())
    # SEARCH answers ESEARCH, never SEARCH
    assert s.ok("SEARCH ALL") == [f'* ESEARCH (TAG "t{s.n}") ALL 1:3']
    assert s.ok("UID SEARCH 2:3") == [f'* ESEARCH (TAG "t{s.n}") UID ALL 2:3']
    assert s.ok("SEARCH SUBJECT nomatch") == [f'* ESEARCH (TAG "t{s.n}")']
    assert s.ok("SEARCH RETURN (COUNT) ALL") == [f'* ESEARCH (TAG "t{s.n}") COUNT 3']
    assert s.ok("SEARCH RETURN (SAVE) 2") == []
    assert sorted(fetched(s.ok("FETCH $ (UID)"))) == [2]
    # FETCH BINARY, which IMAP4rev2 requires (RFC 9051 6.4.5), on "$"
    untagged = s.ok("FETCH $ (BINARY.SIZE[1] BINARY.PEEK[1])")
    assert untagged[0].startswith("* 2 FETCH (") and "BINARY.SIZE[1] 8" in untagged[0], untagged
    assert "Hello." in "\n".join(untagged), untagged
    for bad in ("SEARCH RECENT", "SEARCH NEW", "UID SEARCH NOT OLD", "STATUS INBOX (RECENT)"):
        _, tagged = s.cmd(bad)
        assert tagged.startswith("BAD"), (bad, tagged)
    # STATUS DELETED and SIZE (RFC 9051 6.3.11)
    s.ok(r"STORE 1 +FLAGS.SILENT (\Deleted)")
    untagged = s.ok("STATUS INBOX (MESSAGES DELETED SIZE)")
    assert re.match(r'\* STATUS "INBOX" \(MESSAGES 3 DELETED 1 SIZE \d+\)$', untagged[0]), untagged
    # new mail: EXISTS, no RECENT
    deliver(inst, 1, subject="later")
    seen = wait_exists(s, 4)
    assert not any("RECENT" in ln for ln in seen), seen
    # an IMAP4rev1 session after it: the rev2 session was told first
    r1 = Session(inst)
    untagged = r1.ok("SELECT INBOX")
    assert "* 0 RECENT" in untagged and "* 4 EXISTS" in untagged, untagged
    assert r1.ok("SEARCH ALL") == ["* SEARCH 1 2 3 4"]


def test_rev2_names_list_delete(inst):
    s = rev2_session(inst)
    r1 = Session(inst)
    # UTF-8 mailbox names in quoted strings (RFC 9051 5.1); IMAP4rev1 sessions see modified UTF-7
    s.ok('CREATE "Entwürfe"')
    assert '* LIST (\\HasNoChildren) "." "Entwürfe"' in s.ok('LIST "" "Entw*"')
    assert '* LIST (\\HasNoChildren) "." "Entw&APw-rfe"' in r1.ok('LIST "" "Entw*"')
    s.ok("SELECT INBOX")
    untagged = s.ok('SELECT "Entwürfe"')
    assert "* 0 EXISTS" in untagged and untagged[0].startswith("* OK [CLOSED]"), untagged
    # CREATE of a name stored otherwise: LIST with OLDNAME (RFC 9051 6.3.4)
    untagged = s.ok("CREATE inbox.sub")
    assert untagged == ['* LIST (\\HasNoChildren) "." "INBOX.sub" ("OLDNAME" ("inbox.sub"))'], untagged
    # DELETE of a mere level of children's names: NO [HASCHILDREN]
    s.ok("CREATE Lists.pg")
    _, tagged = s.cmd("DELETE Lists")
    assert tagged.startswith("NO [HASCHILDREN]"), tagged
    # a subscribed name that is no mailbox is \NonExistent
    s.ok("SUBSCRIBE Gone")
    listed = s.ok('LIST (SUBSCRIBED) "" "Gone"')
    assert len(listed) == 1 and listed[0].endswith(') "." "Gone"'), listed
    assert {"\\NonExistent", "\\Subscribed"} <= set(listed[0][8:listed[0].index(")")].split()), listed
    assert any("\\Noselect" in ln for ln in r1.ok('LSUB "" "Gone"'))


def test_rev2_removed_commands_and_fetch_items(inst):
    """RFC 9051's grammar has no CHECK, LSUB, RFC822, RFC822.HEADER, RFC822.TEXT: BAD after ENABLE, fine before."""
    deliver(inst, 2, subject="removed")
    s = rev2_session(inst)
    r1 = Session(inst)
    s.ok("SELECT INBOX")
    r1.ok("SELECT INBOX")
    for cmd, why in (("CHECK", "CHECK is not an IMAP4rev2 command: use NOOP"),
                     ('LSUB "" "*"', "LSUB is not an IMAP4rev2 command: use LIST (SUBSCRIBED)")):
        assert s.cmd(cmd) == ([], "BAD " + why), cmd
        assert r1.cmd(cmd)[1].startswith("OK"), cmd
    for item in ("RFC822", "RFC822.HEADER", "(UID RFC822.TEXT)", "(FLAGS RFC822)"):
        untagged, tagged = s.cmd(f"FETCH 1 {item}")
        assert untagged == [] and tagged == ("BAD RFC822, RFC822.HEADER and RFC822.TEXT are not IMAP4rev2 fetch "
                                             "items: use BODY[], BODY.PEEK[HEADER], BODY[TEXT]"), (item, tagged)
        assert r1.cmd(f"UID FETCH 1 {item}")[1].startswith("OK"), item
    # RFC822.SIZE stays in IMAP4rev2 (RFC 9051 6.4.5), and so does FETCH FAST, which asks for it
    assert re.match(r"\* 1 FETCH \(RFC822\.SIZE \d+\)$", s.ok("FETCH 1 RFC822.SIZE")[0])
    assert "RFC822.SIZE" in s.ok("FETCH 1 FAST")[0]
    # the SEARCH charsets: UTF-8 and US-ASCII (RFC 9051 6.4.4 requires both); others NO [BADCHARSET]
    assert s.ok("SEARCH CHARSET UTF-8 ALL") == [f'* ESEARCH (TAG "t{s.n}") ALL 1:2']
    assert s.ok("SEARCH CHARSET US-ASCII SUBJECT removed") == [f'* ESEARCH (TAG "t{s.n}") ALL 1:2']
    assert s.cmd("SEARCH CHARSET ISO-8859-1 ALL") == ([], "NO [BADCHARSET (UTF-8 US-ASCII)] Charset not supported")
    # a rev2 session's unsolicited FETCH carries the UID (RFC 9051 7.5.2), at a command and while idling
    r1.ok(r"STORE 2 +FLAGS.SILENT (\Flagged)")
    assert s.ok("NOOP") == ["* 2 FETCH (UID 2 FLAGS (\\Flagged))"]
    s.n += 1
    s.send(f"t{s.n} IDLE\r\n".encode())
    assert s.line() == b"+ idling"
    r1.ok(r"STORE 1 +FLAGS.SILENT (\Answered)")
    assert s.line() == b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Answered))"     # \Seen: r1's FETCH RFC822
    r1.ok(r"STORE 1 +FLAGS.SILENT (\Deleted)")
    assert s.line() == b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Answered \\Deleted))"
    r1.ok("EXPUNGE")
    assert s.line() == b"* 1 EXPUNGE"
    assert s.line() == b"* 1 EXISTS"          # no RECENT in IMAP4rev2
    s.send(b"DONE\r\n")
    assert s.until_tagged(f"t{s.n}".encode()) == [f"t{s.n} OK IDLE terminated".encode()]
    # the IMAP4rev1 session is told without UID, as RFC 3501 has it
    assert s.ok(r"STORE 1 +FLAGS.SILENT (\Seen)") == []
    assert r1.ok("NOOP") == ["* 1 FETCH (FLAGS (\\Seen \\Flagged))"]


def test_searchres_dollar_last_in_search_set(inst):
    deliver(inst, 4, subject="d")
    s = Session(inst)
    s.ok("SELECT INBOX")
    s.ok("SEARCH RETURN (SAVE) 3")
    # "$" ending a set in a search program: the numbers or the saved result
    assert s.ok("SEARCH 1,$") == ["* SEARCH 1 3"]
    assert s.ok("UID SEARCH UID 2,$") == ["* SEARCH 2 3"]
    _, tagged = s.cmd("SEARCH $,1")
    assert tagged.startswith("BAD"), tagged
