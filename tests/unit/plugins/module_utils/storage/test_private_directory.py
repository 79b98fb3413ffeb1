# -*- coding: utf-8 -*-
"""storage/private_directory.py: who may make a directory (from what lstat saw, cases), the checks
of its arguments, and the descriptor-based making in a temporary tree as the user running the
tests. The module itself, as root and as the owner, is tested in
tests/integration/test_private_directory.py."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import private_directory as pd

OWNER = 26  # the owner's uid in the cases


def seen(path, kind="dir", uid=0, mode=0o755):
    """What lstat would tell of ``path``: kind dir, link, file or None (nothing there)."""
    if kind is None:
        return pd.Seen(path)
    bits = {"dir": stat.S_IFDIR, "link": stat.S_IFLNK, "file": stat.S_IFREG}[kind]
    return pd.Seen(path, os.stat_result((bits | mode, 1, 1, 1, uid, uid, 0, 0, 0, 0)))


def chain(path, **changes):
    """The directories above ``path``, nearest first, root's 0755, with ``changes`` by path:
    dict(kind=..., uid=..., mode=...)."""
    return [seen(p, **changes.get(p, {})) for p in pd.ancestors(path)]


CASES = [
    # (what, itself, changes above, who makes it, or a part of the error)
    ("all above root's alone: root", dict(kind=None), {}, pd.BY_ROOT),
    ("an existing directory, all above root's", dict(uid=OWNER, mode=0o700), {}, pd.BY_ROOT),
    ("inside the owner's directory: the owner", dict(kind=None), {"/var/backups/db": dict(uid=OWNER, mode=0o700)},
     pd.BY_OWNER),
    ("the owner's directory in a sticky world-writable one: the owner", dict(kind=None),
     {"/var/backups/db": dict(uid=OWNER), "/var/backups": dict(mode=0o1777)}, pd.BY_OWNER),
    ("a symlink at the path", dict(kind="link"), {}, "is a symlink or not a directory: it is never made"),
    ("a file at the path", dict(kind="file"), {}, "is a symlink or not a directory: it is never made"),
    ("no directory above", dict(kind=None), {"/var/backups/db": dict(kind=None)},
     "the directory above it, /var/backups/db, does not exist"),
    ("the directory above is a symlink of the owner", dict(kind=None),
     {"/var/backups/db": dict(kind="link", uid=OWNER)}, "/var/backups/db, is a symlink or not a directory"),
    ("another user's directory above", dict(kind=None), {"/var/backups/db": dict(uid=64999)},
     "belongs to uid 64999, not to postgres, and root makes directories only where root alone may change"),
    ("root's directory above, writable by its group", dict(kind=None), {"/var/backups/db": dict(mode=0o775)},
     "(/var/backups/db: owner root, mode 0775)"),
    ("root's directory above, in a directory others may write", dict(kind=None),
     {"/var/backups": dict(mode=0o1777)}, "(/var/backups: owner root, mode 1777)"),
    ("an ancestor that is a symlink", dict(kind=None), {"/var": dict(kind="link", mode=0o777)},
     "(/var: owner root, mode 0777, a symlink)"),
]


@pytest.mark.parametrize("what,itself,changes,expected", CASES, ids=[c[0] for c in CASES])
def test_who_makes_the_directory(what, itself, changes, expected):
    path = "/var/backups/db/logs"
    args = (path, "postgres", OWNER, seen(path, **itself), chain(path, **changes))
    if expected in (pd.BY_ROOT, pd.BY_OWNER):
        assert pd.decide(*args) == expected
    else:
        with pytest.raises(pd.PrivateDirectoryError) as error:
            pd.decide(*args)
        assert expected in str(error.value) and path in str(error.value)


def test_the_nearest_unsafe_directory_is_named():
    path = "/srv/a/b/c"
    above = chain(path, **{"/srv/a/b": dict(uid=64999), "/srv/a": dict(mode=0o777), "/srv": dict(mode=0o775)})
    with pytest.raises(pd.PrivateDirectoryError) as error:
        pd.decide(path, "postgres", OWNER, seen(path, kind=None), above)
    assert "(/srv/a/b: owner uid 64999, mode 0755)" in str(error.value)


@pytest.mark.parametrize("path,expected", [
    ("/var/backups/db", "/var/backups/db"), ("/var/backups/db/", "/var/backups/db"), ("//var//x", "/var/x"),
])
def test_paths_are_normalised(path, expected):
    assert pd.checked_path(path) == expected


BAD_INPUT = ([(pd.checked_path, path, 'must be an absolute path below "/"')
              for path in ("relative/dir", "/", "///", "/var/../etc", "/var/./x", "", "/a/b/..")]
             + [(pd.parse_mode, text, "is not an octal mode")
                for text in ("rwx", "0800", "u=rwx", "-700", "", "17777", "0x700")])


@pytest.mark.parametrize("function,value,message", BAD_INPUT)
def test_bad_paths_and_modes_are_refused(function, value, message):
    with pytest.raises(pd.PrivateDirectoryError) as error:
        function(value)
    assert message in str(error.value)


def test_ancestors_are_nearest_first():
    assert pd.ancestors("/var/backups/db") == ["/var/backups", "/var", "/"]
    assert pd.ancestors("/data") == ["/"]


@pytest.mark.parametrize("text,mode", [("0700", 0o700), ("750", 0o750), ("02750", 0o2750), ("0", 0)])
def test_modes(text, mode):
    assert pd.parse_mode(text) == mode


def test_make_makes_it_once_with_its_mode(tmp_path):
    path = str(tmp_path / "made")
    assert pd.make(path, 0o750, check_mode=True) is True
    assert not os.path.lexists(path)
    assert pd.make(path, 0o750) is True
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o750 and os.path.isdir(path)
    assert pd.make(path, 0o750) is False
    assert pd.make(path, 0o700, check_mode=True) is True
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o750
    assert pd.make(path, 0o700) is True
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o700


def test_make_sets_owner_and_group_as_given(tmp_path):
    path = str(tmp_path / "owned")
    uid, gid = os.geteuid(), os.getegid()
    assert pd.make(path, 0o700, uid, gid) is True
    st = os.lstat(path)
    assert (st.st_uid, st.st_gid) == (uid, gid)
    assert pd.make(path, 0o700, uid, gid) is False


def test_make_refuses_a_symlink_at_the_path(tmp_path):
    target = tmp_path / "target"
    target.mkdir(mode=0o755)
    os.symlink(str(target), str(tmp_path / "link"))
    with pytest.raises(pd.PrivateDirectoryError) as error:
        pd.make(str(tmp_path / "link"), 0o700)
    assert "is a symlink or not a directory" in str(error.value)
    assert stat.S_IMODE(os.lstat(str(target)).st_mode) == 0o755


def test_make_never_goes_through_a_symlink_above(tmp_path):
    """Swapped after the checks: a directory on the way is now a symlink. Nothing is made through it."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    os.symlink(str(target), str(tmp_path / "swapped"))
    with pytest.raises(pd.PrivateDirectoryError) as error:
        pd.make(str(tmp_path / "swapped" / "logs"), 0o700)
    assert "%s is a symlink or not a directory" % (tmp_path / "swapped") in str(error.value)
    assert os.listdir(str(target)) == []


def test_ensure_refuses_bad_input_before_looking(tmp_path):
    with pytest.raises(pd.PrivateDirectoryError, match="no such user"):
        pd.ensure(str(tmp_path / "x"), "no-such-user-lift")
    with pytest.raises(pd.PrivateDirectoryError, match="no such group"):
        pd.ensure(str(tmp_path / "x"), "root", group="no-such-group-lift")
    with pytest.raises(pd.PrivateDirectoryError, match="not an octal mode"):
        pd.ensure(str(tmp_path / "x"), "root", mode="rwx")
    assert not os.path.lexists(str(tmp_path / "x"))
