# -*- coding: utf-8 -*-
"""The private_directory module through ansible-playbook, as root, on this machine's real users
(root, postgres, nobody): root makes what lies under root's directories alone, the owner makes
what lies inside its own (proved by the group: the owner's new directory gets the owner's group,
never the one asked of root), a symlink or an unsafe directory above is refused with nothing made
or changed, check mode changes nothing, a second run changes nothing."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import os
import pwd
import shutil
import stat
import tempfile

import pytest

from helpers import run_module

POSTGRES = pwd.getpwnam("postgres")
NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def base():
    """A root 0755 directory whose every ancestor is root's alone (/var/lib), removed afterwards."""
    path = tempfile.mkdtemp(prefix="lift-it-private-", dir="/var/lib")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def make(args, expect_ok=True, check=False):
    return run_module("private_directory", args, expect_ok=expect_ok, check=check)


def test_root_makes_it_under_roots_directories_then_nothing_changes(base):
    path = os.path.join(base, "backups")
    result = make(dict(path=path + "/", owner="postgres"), check=True)
    assert result["changed"] and result["made_by"] == "root" and not os.path.lexists(path)

    result = make(dict(path=path + "/", owner="postgres"))
    assert result["changed"] and result["made_by"] == "root" and result["path"] == path
    st = os.lstat(path)
    assert (st.st_uid, st.st_gid, mode_of(path)) == (POSTGRES.pw_uid, POSTGRES.pw_gid, 0o700)
    assert not make(dict(path=path, owner="postgres"))["changed"]

    # A mode and a group of root's choosing; then a directory root made for someone else is handed over.
    result = make(dict(path=path, owner="postgres", group="root", mode="0750"))
    assert result["changed"] and (os.lstat(path).st_gid, mode_of(path)) == (0, 0o750)
    os.chown(path, 0, 0)
    assert make(dict(path=path, owner="postgres", group="root", mode="0750"))["changed"]
    assert os.lstat(path).st_uid == POSTGRES.pw_uid


def test_the_owner_makes_it_inside_its_own_directory(base):
    parent = os.path.join(base, "backups")
    os.mkdir(parent, 0o700)
    os.chown(parent, POSTGRES.pw_uid, POSTGRES.pw_gid)
    path = os.path.join(parent, "logs")
    # group=root is what root would set; the owner cannot, so its directory has its own group.
    result = make(dict(path=path, owner="postgres", group="root", mode="0750"))
    assert result["changed"] and result["made_by"] == "owner"
    st = os.lstat(path)
    assert (st.st_uid, st.st_gid, mode_of(path)) == (POSTGRES.pw_uid, POSTGRES.pw_gid, 0o750)
    assert not make(dict(path=path, owner="postgres", mode="0750"))["changed"]
    assert make(dict(path=path, owner="postgres", mode="0700"))["changed"] and mode_of(path) == 0o700


def test_a_symlink_the_owner_planted_is_refused_and_its_target_untouched(base):
    parent = os.path.join(base, "backups")
    os.mkdir(parent, 0o700)
    os.chown(parent, POSTGRES.pw_uid, POSTGRES.pw_gid)
    canary = os.path.join(base, "canary")
    os.mkdir(canary, 0o755)
    os.symlink(canary, os.path.join(parent, "logs"))
    result = make(dict(path=os.path.join(parent, "logs"), owner="postgres"), expect_ok=False)
    assert "%s/logs is a symlink or not a directory: it is never made or changed through one" % parent in result["msg"]
    # And a path through the symlink: never followed.
    result = make(dict(path=os.path.join(parent, "logs", "deeper"), owner="postgres"), expect_ok=False)
    assert "is a symlink or not a directory" in result["msg"]
    st = os.lstat(canary)
    assert (st.st_uid, mode_of(canary), os.listdir(canary)) == (0, 0o755, [])


def test_another_users_directory_above_is_refused(base):
    parent = os.path.join(base, "nobodys")
    os.mkdir(parent, 0o755)
    os.chown(parent, NOBODY.pw_uid, NOBODY.pw_gid)
    result = make(dict(path=os.path.join(parent, "x"), owner="postgres"), expect_ok=False)
    assert ("%s/x cannot be made safely: the directory above it, %s, belongs to nobody, not to postgres"
            % (parent, parent)) in result["msg"]
    assert os.listdir(parent) == []


def test_roots_directory_under_a_world_writable_one_is_refused():
    """/tmp is world-writable (sticky): root never makes anything below it, even in its own directory."""
    parent = tempfile.mkdtemp(prefix="lift-it-private-")
    try:
        result = make(dict(path=os.path.join(parent, "x"), owner="postgres"), expect_ok=False)
        assert "root makes directories only where root alone may change every directory above (/tmp: owner root, " \
               "mode 1777)" in result["msg"]
        assert os.listdir(parent) == []
    finally:
        shutil.rmtree(parent)


@pytest.mark.parametrize("args,message", [
    (dict(path="relative/x", owner="postgres"), 'relative/x must be an absolute path below "/"'),
    (dict(path="/var/lib/../tmp/x", owner="postgres"), 'must be an absolute path below "/" without "." or ".."'),
    (dict(owner="no-such-user-lift"), "owner no-such-user-lift: no such user"),
    (dict(owner="postgres", mode="u=rwx"), "mode u=rwx is not an octal mode such as 0700"),
    (dict(owner="postgres", group="no-such-group-lift"), "group no-such-group-lift: no such group"),
])
def test_bad_arguments_are_refused_with_nothing_made(base, args, message):
    args = dict(dict(path=os.path.join(base, "x")), **args)
    result = make(args, expect_ok=False)
    assert message in result["msg"]
    assert os.listdir(base) == []


def test_the_group_option_takes_a_number(base):
    path = os.path.join(base, "by_gid")
    gid = grp.getgrnam("nogroup").gr_gid
    make(dict(path=path, owner="postgres", group=str(gid)))
    assert os.lstat(path).st_gid == gid
