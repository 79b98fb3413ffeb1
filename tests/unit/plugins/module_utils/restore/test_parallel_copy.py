# -*- coding: utf-8 -*-
"""parallel_copy's pure parts: where a table's COPY data is cut for several sessions (only at row
boundaries, never inside an escaped newline) and how the index phase's statements are grouped."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import plain_split
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import parallel_copy


class Header(object):
    def __init__(self, name):
        self.name = name
        self.schema, self.table = name
        self.columns = ["a"]


def block(data, name=("s", "t"), at=0):
    found = plain_split.Block(Header(name), at)
    found.end = at + len(data)
    return found


def cut(data, parts):
    handle = io.BytesIO(data)
    return [data[s:e] for s, e in parallel_copy.pieces(handle, block(data), parts)]


def test_pieces_are_whole_rows_that_add_up_to_the_block():
    data = b"".join(b"%d\trow %d\n" % (n, n) for n in range(1000))
    for parts in (1, 2, 3, 7):
        found = cut(data, parts)
        assert b"".join(found) == data
        assert len(found) == parts
        assert all(piece.endswith(b"\n") for piece in found)
        sizes = [len(p) for p in found]
        assert max(sizes) - min(sizes) < 40  # about equal: a cut moves to the next row's start


def test_an_escaped_newline_is_never_a_cut():
    # Backslash-newline is a newline inside a value for COPY: the row goes on after it.
    row = b"1\tone \\\n still the same value\n"
    data = row * 200
    found = cut(data, 4)
    assert b"".join(found) == data
    assert all(piece.endswith(b"value\n") for piece in found), [p[-20:] for p in found]


def test_an_escaped_backslash_before_a_newline_ends_the_row():
    # "\\\\" is one backslash in the value; the newline after it ends the row.
    data = b"1\tends with a backslash \\\\\n" * 300
    found = cut(data, 3)
    assert len(found) == 3 and b"".join(found) == data
    assert all(piece.endswith(b"\\\\\n") for piece in found)


def test_a_run_of_backslashes_from_the_window_start_is_not_trusted():
    # The cut is looked for from the planned offset on; backslashes there may continue before it.
    data = b"x" * 10 + b"\\\n" + b"y\n"
    handle = io.BytesIO(data)
    assert parallel_copy.row_boundary(handle, 10, len(data)) is None
    assert parallel_copy.row_boundary(handle, 11, len(data)) is None
    assert parallel_copy.row_boundary(handle, 3, len(data)) is None  # escaped, then the block's end


def test_one_row_cannot_be_cut():
    data = b"1\t" + b"z" * 5000 + b"\n"
    assert cut(data, 4) == [data]


def test_only_a_table_bigger_than_its_share_is_cut(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel_copy, "MIN_PIECE", 10)
    big = b"".join(b"%d\tbig\n" % n for n in range(3000))
    small = b"".join(b"%d\ts\n" % n for n in range(100))
    path = tmp_path / "dump"
    path.write_bytes(big + small)
    blocks = [block(big, ("s", "big")), block(small, ("s", "small"), at=len(big))]
    tasks = parallel_copy.copy_tasks(str(path), blocks, jobs=2)
    whats = sorted(t.what for t in tasks)
    assert whats == ["loading the data of s.big (part 1 of 2)", "loading the data of s.big (part 2 of 2)",
                     "loading the data of s.small"]
    assert sum(t.size for t in tasks) == len(big) + len(small)
    assert len(parallel_copy.copy_tasks(str(path), blocks, jobs=1)) == 2


def statement(table, text, tablespace=None):
    return plain_split.WaveStatement(table, text, tablespace)


def test_keys_first_then_each_index_on_its_own_and_trees_whole():
    a, b, parent, part = ("s", "a"), ("s", "b"), ("s", "parent"), ("s", "part")
    wave = [statement(a, b"ALTER TABLE ONLY s.a\n    ADD CONSTRAINT a_pkey PRIMARY KEY (id);"),
            statement(parent, b"ALTER TABLE ONLY s.parent\n    ADD CONSTRAINT parent_pkey PRIMARY KEY (id);"),
            statement(part, b"ALTER TABLE ONLY s.part\n    ADD CONSTRAINT part_pkey PRIMARY KEY (id);"),
            statement(a, b"CREATE INDEX a_x ON s.a USING btree (x);"),
            statement(a, b"CREATE INDEX a_y ON s.a USING btree (y);"),
            statement(b, b"CREATE UNIQUE INDEX b_u ON s.b USING btree (u);"),
            statement(parent, b"CREATE INDEX parent_k ON ONLY s.parent USING btree (k);")]
    first, second = parallel_copy.index_phases(wave, {part: parent}, {a: 100, b: 5, parent: 0, part: 50})
    assert sorted(t.what for t in first) == ["adding the keys of s.a", "building the indexes of s.parent"]
    assert sorted(t.what for t in second) == ["building an index of s.a", "building an index of s.a",
                                              "building an index of s.b"]
    tree = [t for t in first if t.what.endswith("s.parent")][0]
    assert tree.size == 51  # the tree's data (its partition's) decides its place


class Cursor(object):
    def __init__(self):
        self.ran = []

    def execute(self, text):
        self.ran.append(text)


def test_a_task_sets_each_statement_s_tablespace_and_resets_an_unknown_one():
    t = ("s", "t")
    wave = [statement(t, b"CREATE INDEX i1 ON s.t USING btree (a);"),
            statement(t, b"CREATE INDEX i2 ON s.t USING btree (b);", b"SET default_tablespace = fast;")]
    _first, second = parallel_copy.index_phases(wave, {}, {t: 1})
    cur = Cursor()
    for task in second:
        task.run(cur)
    # Each task stands alone (a session runs several): the default comes back with RESET.
    assert sorted(cur.ran) == sorted(["RESET default_tablespace", "CREATE INDEX i1 ON s.t USING btree (a);",
                                      "SET default_tablespace = fast;", "CREATE INDEX i2 ON s.t USING btree (b);"])


@pytest.mark.parametrize("jobs", [2, 4])
def test_a_table_is_never_cut_into_more_pieces_than_sessions(tmp_path, monkeypatch, jobs):
    monkeypatch.setattr(parallel_copy, "MIN_PIECE", 10)
    data = b"".join(b"%d\trow\n" % n for n in range(5000))
    path = tmp_path / "dump"
    path.write_bytes(data)
    assert len(parallel_copy.copy_tasks(str(path), [block(data)], jobs=jobs)) == jobs


def test_without_room_to_spare_no_table_is_cut(tmp_path, monkeypatch):
    # The rows of a failed part stay in the table's file: on a nearly full disk every table loads whole.
    monkeypatch.setattr(parallel_copy, "MIN_PIECE", 10)
    data = b"".join(b"%d\trow\n" % n for n in range(5000))
    path = tmp_path / "dump"
    path.write_bytes(data)
    (task,) = parallel_copy.copy_tasks(str(path), [block(data)], jobs=2, cut=False)
    assert task.what == "loading the data of s.t" and task.size == len(data)
