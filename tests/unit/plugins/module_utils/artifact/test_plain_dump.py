# -*- coding: utf-8 -*-
"""The plain-dump reader: pg_dump's grammar accepted, everything psql would run as a program refused."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import plain_dump

# A plain dump as pg_dump writes it: the child's data before its parent's, a function whose body
# contains COPY text and backslashes, strings of every kind, hostile names, and sequence positions.
DUMP = b"""--
-- PostgreSQL database dump
--

\\restrict AbC123

SET standard_conforming_strings = on;
CREATE FUNCTION app.f() RETURNS void LANGUAGE sql AS $$
COPY app.parent (id) FROM stdin;
\\! not a command: inside a dollar quote
$$;
CREATE FUNCTION app.g() RETURNS text LANGUAGE sql AS $body$ SELECT E'it\\'s \\\\ fine; \\!'::text $body$;
COMMENT ON FUNCTION app.g() IS 'a \\ backslash; and ''quotes''';
/* a /* nested */ comment \\! */
CREATE TABLE app."odd\\name" (x int); -- a comment \\!
ALTER TABLE app.parent OWNER TO lift_admin;
ALTER FUNCTION app.f() OWNER TO "Odd ""Owner""\";

--
-- Data for Name: child; Type: TABLE DATA; Schema: app; Owner: lift_admin
--

COPY app.child (id, parent_id, note) FROM stdin;
1\t1\ta\\ttab
2\t2\t\\\\.
\\.


--
-- Data for Name: parent; Type: TABLE DATA; Schema: app; Owner: lift_admin
--

COPY app.parent (id) FROM stdin;
1
2
\\.


--
-- Data for Name: we;ird "t; Type: TABLE DATA; Schema: app; Owner: lift_admin
--

COPY app."we;ird ""t" (x) FROM stdin;
\\.


--
-- Name: parent_id_seq; Type: SEQUENCE SET; Schema: app; Owner: lift_admin
--

SELECT pg_catalog.setval('app.parent_id_seq', 2, true);
SELECT pg_catalog.setval('app."it''s_seq"', 7, false);

--
-- Name: TABLE parent; Type: ACL; Schema: app; Owner: lift_admin
--

GRANT SELECT ON TABLE app.parent TO backup_user;


--
-- PostgreSQL database dump complete
--

\\unrestrict AbC123

"""


def events(data, chunk=plain_dump.CHUNK):
    return list(plain_dump.PlainDumpReader(io.BytesIO(data), chunk=chunk).events())


def refused(data):
    with pytest.raises(plain_dump.PlainDumpError) as info:
        plain_dump.validate(io.BytesIO(data))
    return str(info.value)


def test_reader_finds_data_blocks_rows_and_sequences():
    seen = events(DUMP)
    copies = [d for k, _r, d in seen if k == plain_dump.COPY_START]
    assert [c.name for c in copies] == [("app", "child"), ("app", "parent"), ("app", 'we;ird "t')]
    assert copies[0].columns == ["id", "parent_id", "note"] and copies[0].rows == 2
    data = b"".join(r for k, r, d in seen if k == plain_dump.DATA)
    assert data == b"1\t1\ta\\ttab\n2\t2\t\\\\.\n1\n2\n"
    setvals = [d.detail for k, _r, d in seen if k == plain_dump.STATEMENT and d.kind == "setval"]
    assert setvals == [("app", "parent_id_seq", 2, True), ("app", "it's_seq", 7, False)]
    # The raw bytes of all events are the dump itself.
    assert b"".join(r for _k, r, _d in seen) == DUMP


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64])
def test_any_chunk_size_gives_the_same_events(chunk):
    def shape(found):
        merged, data = [], b""
        for kind, raw, _detail in found:
            if kind == plain_dump.DATA:
                data += raw
                continue
            if data:
                merged.append((plain_dump.DATA, data))
                data = b""
            merged.append((kind, raw))
        return merged
    assert shape(events(DUMP, chunk)) == shape(events(DUMP))


def test_copy_inside_a_function_body_is_not_data():
    body = DUMP.split(b"--\n-- Data for Name", 1)[0]
    assert [k for k, _r, _d in events(body + b"\\unrestrict AbC123\n") if k == plain_dump.COPY_START] == []


def test_truncated_data_and_statements_are_detected():
    assert "truncated" in refused(DUMP.split(b"2\t2\t", 1)[0]) and "app.child" in refused(DUMP.split(b"2\t2\t", 1)[0])
    assert "truncated" in refused(DUMP.split(b"\\.\n", 1)[0] + b"\\.")  # the end line without its newline
    assert "truncated" in refused(b"SELECT 'unterminated\n")


@pytest.mark.parametrize("line", [
    b"\\! id > /tmp/pwned\n",
    b"SELECT 1; \\! id\n",
    b"  \\o /tmp/out\n",
    b"SELECT 1 \\gexec\n",
    b"\\copy app.parent to program 'id'\n",
    b"\\set x `id`\n",
    b"SELECT 'a\\' \\! id --'\n",       # a standard string ends at the second quote
    b"SELECT (1, \\! id\n);\n",
    b"\\connect other\n",
    b"\\restrict SecondKey\n",
    b"\\unrestrict WrongKey\n",
])
def test_meta_commands_are_refused_wherever_they_stand(line):
    dump = DUMP.replace(b"SET standard_conforming_strings = on;\n", b"SET standard_conforming_strings = on;\n" + line)
    assert "meta-command" in refused(dump)


def test_strings_comments_and_quotes_may_hold_backslashes():
    assert plain_dump.validate(io.BytesIO(DUMP)) == dict(restrict=True, tables=3, lines=DUMP.count(b"\n"))


def test_a_copy_block_ends_exactly_where_psql_ends_it():
    # psql ends the data at "\.\r\n" as well: the next line is a command again, and is refused.
    crlf = DUMP.replace(b"1\n2\n\\.\n", b"1\r\n2\r\n\\.\r\n\\! id\n")
    assert "line" in refused(crlf) and "meta-command" in refused(crlf)
    # Rows are the lines before the end, not what follows it.
    ok = DUMP.replace(b"1\n2\n\\.\n", b"1\r\n2\r\n\\.\r\n")
    parent = [d for k, _r, d in events(ok) if k == plain_dump.COPY_START][1]
    assert parent.rows == 2
    # "\." followed by anything else is a data line (the server rejects it), not an end.
    odd = DUMP.replace(b"1\n2\n\\.\n", b"1\n\\.x\n2\n\\.\n")
    assert [d for k, _r, d in events(odd) if k == plain_dump.COPY_START][1].rows == 3


@pytest.mark.parametrize("header", [
    b"COPY app.parent (id) TO PROGRAM 'id'; COPY app.parent (id) FROM stdin;",
    b"copy app.parent (id) from program 'id';",
    b"/* x */ COPY app.parent (id) FROM PROGRAM 'id';",
    b"COPY app.parent (id) FROM '/etc/passwd';",
    b"COPY (SELECT 1) TO STDOUT;",
    b"COPY app.parent (id) FROM stdin WITH (FORMAT binary);",
])
def test_copy_statements_pg_dump_never_writes_are_refused(header):
    dump = DUMP.replace(b"--\n\nCOPY app.parent (id) FROM stdin;", b"--\n\n" + header)
    assert "COPY statement that pg_dump does not write" in refused(dump)


def test_text_after_a_copy_statement_on_its_line_is_refused():
    dump = DUMP.replace(b"--\n\nCOPY app.parent (id) FROM stdin;\n", b"--\n\nCOPY app.parent (id) FROM stdin; SELECT 1;\n")
    assert "text after a COPY statement" in refused(dump)


def test_restrict_lines_must_be_where_pg_dump_writes_them():
    assert "meta-command" in refused(DUMP.replace(b"\\restrict AbC123\n\n", b"") .replace(b"SELECT pg_catalog.setval(",
                                                                                          b"\\restrict AbC123\nSELECT pg_catalog.setval(", 1))
    assert "content after" in refused(DUMP + b"SELECT 1;\n")
    # pg_dumpall writes its trailer comment after \unrestrict.
    assert plain_dump.validate(io.BytesIO(DUMP + b"--\n-- PostgreSQL database cluster dump complete\n--\n"))
    without = DUMP.replace(b"\\restrict AbC123\n", b"").replace(b"\\unrestrict AbC123\n", b"")
    assert plain_dump.validate(io.BytesIO(without))["restrict"] is False


def test_turning_standard_conforming_strings_off_is_refused():
    dump = DUMP.replace(b"SET standard_conforming_strings = on;", b"SET standard_conforming_strings = off;")
    assert "standard_conforming_strings" in refused(dump)
    dump = DUMP.replace(b"SET standard_conforming_strings = on;",
                        b"SELECT set_config('standard_conforming_strings', 'off', false);")
    assert "standard_conforming_strings" in refused(dump)


def test_e_strings_only_where_psql_sees_them():
    # After an identifier character the quote starts a standard string (psql's longest match).
    assert plain_dump.validate(io.BytesIO(b"SELECT 1 AS xE'\\';\n"))["lines"] == 1
    assert "meta-command" in refused(b"SELECT xE'\\' \\! id';\n")
    # A real E string: the escaped quote does not end it.
    assert plain_dump.validate(io.BytesIO(b"SELECT E'\\' \\! not a command';\n"))["lines"] == 1


def test_psql_input_restricts_psql_with_our_key_and_leaves_out_the_dump_s_own_lines():
    text = b"".join(plain_dump.psql_input(io.BytesIO(DUMP), "OurKey"))
    assert text.startswith(b"\\restrict OurKey\n")
    assert b"AbC123" not in text
    assert text[len(b"\\restrict OurKey\n"):] == DUMP.replace(b"\\restrict AbC123\n", b"").replace(
        b"\\unrestrict AbC123\n", b"")


def test_psql_input_stops_before_a_meta_command_reaches_psql():
    dump = DUMP.replace(b"--\n\nCOPY app.parent (id) FROM stdin;", b"--\n\nSELECT 1;\n\\! id\nCOPY app.parent (id) FROM stdin;")
    passed = []
    with pytest.raises(plain_dump.PlainDumpError):
        for piece in plain_dump.psql_input(io.BytesIO(dump), "k"):
            passed.append(piece)
    assert b"SELECT 1;\n" in passed and b"\\! id" not in b"".join(passed)


def test_psql_input_can_leave_out_privileges_and_ownership():
    text = b"".join(plain_dump.psql_input(io.BytesIO(DUMP), "k", skip_privileges=True, skip_ownership=True))
    assert b"GRANT SELECT" not in text
    assert b"OWNER TO" not in text
    assert b"Type: ACL" in text  # the entry's comment stays; its statements go
    assert b"CREATE TABLE app.\"odd\\name\"" in text and b"COPY app.parent (id) FROM stdin;\n1\n2\n" in text
    # A statement that only looks like one (not a whole line) stays.
    look = DUMP.replace(b"ALTER TABLE app.parent OWNER TO lift_admin;",
                        b"ALTER TABLE app.parent ALTER x SET DEFAULT 'x OWNER TO lift_admin';")
    kept = b"".join(plain_dump.psql_input(io.BytesIO(look), "k", skip_ownership=True))
    assert b"SET DEFAULT 'x OWNER TO lift_admin'" in kept


def test_identifiers_parse_as_the_server_reads_them():
    assert plain_dump.parse_qualified(b'app."we;ird ""t"') == ("app", 'we;ird "t')
    assert plain_dump.parse_qualified(b"App.Parent") == ("app", "parent")
    assert plain_dump.parse_qualified(b"app.parent; DROP") is None
