# -*- coding: utf-8 -*-
"""The checklist's figures per system as digests (app/lift_simulator.py): canonical whatever the
keys hold, independent of order, strict to one count, and older manifests' full maps compared."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import compare
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator as checklist

HOSTILE = ["plain", "new\nline", "tab\there", 'quo"te', "back\\slash", "comma,\"x\":1", "[\"a\",1]", "",
           " ", "caf\u00e9", "\u00e9", "e\u0301", "\u2028sep", "\U0001f6d7 lift", "nul?\x01", "zz\x7f",
           "\u0000-free", "sha256", "systems", "total"]


def counts(keys):
    return dict((key, index % 4) for index, key in enumerate(keys))


def test_the_digest_is_the_documented_encoding():
    rows = [["b", 2], ["a\n", 1]]
    text = '[["a\\n",1],["b",2]]'
    assert checklist.count_digest(rows) == {"systems": 2, "total": 3,
                                            "sha256": hashlib.sha256(text.encode("ascii")).hexdigest()}
    empty = checklist.count_digest([])
    assert empty == {"systems": 0, "total": 0, "sha256": hashlib.sha256(b"[]").hexdigest()}


def test_order_does_not_matter():
    rows = [[key, n] for key, n in counts(HOSTILE).items()]
    one = checklist.count_digest(rows)
    assert one == checklist.count_digest(list(reversed(rows)))
    assert one == checklist.count_digest(sorted(rows, key=lambda row: row[0].encode("utf-8")[::-1]))
    assert one["systems"] == len(HOSTILE) and one["total"] == sum(n for _k, n in rows)


@pytest.mark.parametrize("first, second", [
    # keys that a naive join (key + separator + count) would run together
    ([["a\t1", 2]], [["a", 12]]),
    ([["a,1", 2]], [["a", 1], ["", 2]]),
    ([["a\n", 1]], [["a", 1]]),
    ([['x"', 1]], [["x'", 1]]),
    ([["caf\u00e9", 1]], [["cafe\u0301", 1]]),  # composed and decomposed: different text, different digest
    ([["a", 1], ["b", 2]], [["a", 2], ["b", 1]]),  # the same systems and total, counts moved
])
def test_different_figures_never_share_a_digest(first, second):
    assert checklist.count_digest(first)["sha256"] != checklist.count_digest(second)["sha256"]


@pytest.mark.parametrize("key", HOSTILE)
def test_one_count_more_for_any_key_is_caught(key):
    before = counts(HOSTILE)
    after = dict(before)
    after[key] += 1
    assert checklist.count_digest(before.items()) != checklist.count_digest(after.items())


def test_an_older_manifests_full_map_gives_the_live_digest():
    versions = counts(HOSTILE)
    live = checklist.count_digest([key, n] for key, n in versions.items())
    assert checklist.as_digest("versions_per_system", versions) == live
    assert checklist.as_digest("versions_per_system", live) == live
    assert checklist.as_digest("versions_per_system", dict(live, detail="ignored")) == live
    published = {"a\nb": [[2, "PUBLISHED", True]], "c": [[1, "ARCHIVED", True], [3, "PUBLISHED", False]]}
    rows = [["c", 3, "PUBLISHED", False], ["a\nb", 2, "PUBLISHED", True], ["c", 1, "ARCHIVED", True]]
    assert checklist.as_digest("published_versions", published) == checklist.rows_digest(rows)
    assert checklist.rows_digest(rows)["systems"] == 2 and checklist.rows_digest(rows)["total"] == 3


@pytest.mark.parametrize("key, value", [
    ("versions_per_system", {"a": "1"}),
    ("versions_per_system", {"a": True}),
    ("versions_per_system", {"a": None}),
    ("versions_per_system", {"a": 1.5}),
    ("versions_per_system", [["a", 1]]),
    ("versions_per_system", "deadbeef"),
    ("published_versions", {"a": [2, "PUBLISHED", True]}),
    ("published_versions", {"a": "x"}),
])
def test_a_map_that_cannot_be_read_gives_no_digest(key, value):
    assert checklist.as_digest(key, value) is None


def test_a_map_whose_keys_look_like_a_digest_is_still_a_map():
    # A system may be called "sha256": an older map never holds text values, a digest does.
    old = {"sha256": 3, "systems": 1, "total": 2}
    assert not checklist.is_digest(old)
    assert checklist.as_digest("versions_per_system", old) == checklist.count_digest(old.items())


def test_the_manifest_stays_small_whatever_the_number_of_systems():
    small = checklist.count_digest(["system-%d" % n, n % 5] for n in range(10))
    large = checklist.count_digest(["system-%d" % n, n % 5] for n in range(100000))
    assert len(json.dumps(large)) - len(json.dumps(small)) < 16  # only the numbers' digits grow


OLD = {
    "schema": "lift_simulator",
    "lift_system_count": 3,
    "versions_per_system": {"a\tb": 3, "caf\u00e9": 0, '"q"': 2},
    "published_per_system": {"a\tb": 1, "caf\u00e9": 0, '"q"': 1},
    "published_versions": {"a\tb": [[2, "PUBLISHED", True]], '"q"': [[1, "PUBLISHED", True]]},
}


def new_of(old):
    """The checklist capture() gives for the same data."""
    return {"schema": old["schema"], "lift_system_count": old["lift_system_count"],
            "versions_per_system": checklist.count_digest(old["versions_per_system"].items()),
            "published_per_system": checklist.count_digest(old["published_per_system"].items()),
            "published_versions": checklist.rows_digest(
                [key] + version for key, versions in old["published_versions"].items() for version in versions)}


def side(found):
    return {"origin": "database", "server_version": "15.1", "row_counts": {}, "flyway": None, "checklist": found}


def test_an_older_manifest_compares_equal_with_live_digests():
    result = compare.compare(side(OLD), side(new_of(OLD)))
    assert result["equal"] is True
    rows = dict((row["item"], row) for row in result["rows"])
    assert rows["versions per system"]["source"] == rows["versions per system"]["target"] == "3 systems, 5 in all"
    assert rows["published versions per system"]["target"] == "3 systems, 2 in all"


@pytest.mark.parametrize("change, item", [
    (lambda c: c["versions_per_system"].update({"caf\u00e9": 1}), "versions per system"),
    (lambda c: c["versions_per_system"].update({"a\tb": 2, "caf\u00e9": 1}), "versions per system"),  # same total
    (lambda c: c["published_per_system"].update({"a\tb": 0, "caf\u00e9": 1}), "published versions per system"),
    (lambda c: c["published_versions"]["a\tb"][0].__setitem__(0, 3), "published versions per system"),
    (lambda c: c["published_versions"]["a\tb"][0].__setitem__(1, "ARCHIVED"), "published versions per system"),
])
def test_one_difference_fails_between_an_older_manifest_and_live_digests(change, item):
    live = json.loads(json.dumps(OLD))
    change(live)
    result = compare.compare(side(OLD), side(new_of(live)))
    assert result["differences"] == [item]
    result = compare.compare(side(new_of(OLD)), side(new_of(live)))  # and between two digests
    assert result["differences"] == [item]


def test_figures_that_cannot_be_read_are_never_equal():
    bad = dict(OLD, versions_per_system={"a\tb": "3"})
    result = compare.compare(side(bad), side(bad))
    assert result["differences"] == ["versions per system"]
    assert dict((row["item"], row) for row in result["rows"])["versions per system"]["source"] == "unreadable"


def test_why_two_digests_differ():
    before = checklist.count_digest([["a", 1], ["b", 2]])
    assert checklist._digest_diff(before, checklist.count_digest([["a", 1]])) == (
        "expected 2 systems, found 1, expected 3 in all, found 1")
    assert checklist._digest_diff(before, checklist.count_digest([["a", 1], ["b", 3]])) == (
        "expected 3 in all, found 4")
    assert checklist._digest_diff(before, checklist.count_digest([["a", 2], ["b", 1]])) == (
        "2 systems, 3 in all as in the backup, but the figures per system differ (their sha256 is not the backup's)")
