# -*- coding: utf-8 -*-
"""A remote backup as the source of the restore and verify modules (their ``target`` and ``name``
options), through ansible-playbook against real servers the test run starts (OpenSSH's sshd,
tests/lib/sftpserver.py; SeaweedFS's S3 gateway, tests/lib/s3server.py) and a real PostgreSQL
cluster. For each target: restores of ``latest`` and of a copy by name (age-encrypted, with the
identity), verification at both levels, check mode that pulls nothing, a kept copy found again, a
damaged copy refused with nothing pulled left behind and the live database untouched, no secret in
the output at -vvv; and the role clean_restore restoring from a target in one step.

Set-up is shared: two backups made once for the module, pushed once to each target."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil

import pytest
import yaml

from agekeys import encrypted_backup, keys  # noqa: F401 pylint: disable=unused-import
from helpers import (backup, clone_database, databases, drop_databases, listing, provenance_of, run_module,
                     undocumented_keys)
from pgcompare import fingerprint
from pglab import postgres_owned_dir, run_playbook
from s3server import s3_server  # noqa: F401 pylint: disable=unused-import
from sftpserver import damage_file, sftp_server_fixture  # noqa: F401 pylint: disable=unused-import

PREFIX = "rsrc_"
SOURCE_DB = PREFIX + "src"
# Fixed names (dated in the past): the plain one is the newer, so `latest` is it.
ENCRYPTED = SOURCE_DB + "_backup_20261130_080000"
PLAIN = SOURCE_DB + "_backup_20261201_080000"
TASK_OPTIONS = {
    "restore": ["path", "target", "name", "pull_dir", "keep_pulled", "database", "force", "identity",
                "identity_file", "login_unix_socket", "login_port", "login_user"],
    "verify": ["path", "target", "name", "pull_dir", "keep_pulled", "database", "level", "identity",
               "identity_file", "login_unix_socket", "login_port", "login_user"],
}


@pytest.fixture(scope="module")
def playbooks():
    """A playbook per module that passes the options the test gives (extra vars), secrets included,
    as a play would: from variables, never written into the playbook."""
    base = postgres_owned_dir("lift-it-rsrc-plays-")
    paths = {}
    for module, options in TASK_OPTIONS.items():
        task = {"name": module.capitalize(), "become": True, "become_user": "postgres",
                "lift_simulator.postgresql.%s" % module: dict(
                    (option, "{{ a.%s | default(omit) }}" % option) for option in options)}
        paths[module] = os.path.join(base, "%s_remote.yml" % module)
        with open(paths[module], "w") as handle:
            yaml.safe_dump([{"name": "%s from a target" % module, "hosts": "lift_db", "gather_facts": False,
                             "vars": {"a": "{{ %s_args }}" % module}, "tasks": [task]}], handle, sort_keys=False)
    # The role's entry point restore (what playbooks/restore.yml runs), its variables from extra vars.
    paths["role"] = os.path.join(base, "role_remote.yml")
    with open(paths["role"], "w") as handle:
        yaml.safe_dump([{"name": "clean_restore from a target", "hosts": "lift_db", "gather_facts": False,
                         "tasks": [{"name": "Restore (role clean_restore, entry point restore)",
                                    "ansible.builtin.include_role": {"name": "lift_simulator.postgresql.clean_restore",
                                                                     "tasks_from": "restore"}}]}],
                       handle, sort_keys=False)
    yield paths
    shutil.rmtree(base, ignore_errors=True)


class Run(object):
    def __init__(self, cluster, playbooks):
        self.cluster = cluster
        self.playbooks = playbooks

    def __call__(self, module, expect_ok=True, check=False, **args):
        run = run_playbook(self.playbooks[module], {"%s_args" % module: dict(self.cluster.connection_vars(), **args)},
                           check=check)
        result = run.task(module.capitalize())
        assert not undocumented_keys(module, result), undocumented_keys(module, result)
        if expect_ok:
            assert run.rc == 0, "%s failed: %s\n%s" % (module, result.get("msg"), run.stderr[-2000:])
        else:
            assert run.rc != 0, "%s unexpectedly succeeded: %s" % (module, result)
        return result


@pytest.fixture(scope="module")
def made(cluster, keys):
    """The source database and its two backups (an age-encrypted one, then a newer plain one)."""
    clone_database(cluster, SOURCE_DB)
    base = postgres_owned_dir("lift-it-rsrc-")
    os.chmod(base, 0o700)
    encrypted = encrypted_backup(cluster, base, SOURCE_DB, keys, compression="zstd", name_template=ENCRYPTED)
    plain = backup(cluster, os.path.join(base, "b"), database=SOURCE_DB, format="custom", name_template=PLAIN)
    yield dict(encrypted=encrypted, plain=plain, fingerprint=fingerprint(cluster, SOURCE_DB), base=base)
    drop_databases(cluster, PREFIX)
    shutil.rmtree(base, ignore_errors=True)


def target_of(kind, request, where):
    """A target's settings on the real server of ``kind``, in its own directory or prefix ``where``,
    and a function that damages one of its files (``truncate`` or ``flip``)."""
    if kind == "sftp":
        server = request.getfixturevalue("sftp_server")
        settings = server.target_settings(where)
        return settings, lambda name, how: damage_file(os.path.join(settings["directory"], name), how)
    server = request.getfixturevalue("s3_server")
    settings = dict(server.target_settings(), prefix=where)
    return settings, lambda name, how: server.damage(where + "/" + name, how)


@pytest.fixture(scope="module", params=["sftp", "s3"])
def remote(request, cluster, made, playbooks):
    """Both backups pushed to one target (once per target)."""
    settings, damage = target_of(request.param, request, "rsrc-copies")
    for kind in ("encrypted", "plain"):
        pushed = run_module("offsite", dict(action="push", path=made[kind]["path"], target=settings))
        assert pushed["sha256"] == made[kind]["sha256"]
    yield dict(kind=request.param, target=settings, damage=damage, run=Run(cluster, playbooks), request=request)


def names_of(made, kind):
    return os.path.basename(made[kind]["path"])


def gone(path):
    """The private directory a pull used is gone, and nothing of the copy with it."""
    return not os.path.exists(os.path.dirname(path))


def test_restore_by_name_then_again_then_latest(cluster, made, keys, remote):
    run, live = remote["run"], PREFIX + "live_" + remote["kind"]
    # By name, an encrypted copy, with the identity; into a private directory under pull_dir.
    pull_dir = postgres_owned_dir("lift-it-rsrc-pull-")
    try:
        named = run("restore", target=remote["target"], name=names_of(made, "encrypted"), database=live,
                    identity=keys["ops"]["identity"], pull_dir=pull_dir)
        source = named["source"]
        assert named["changed"] is True and source["requested"] == source["name"] == names_of(made, "encrypted")
        assert source["sha256"] == made["encrypted"]["sha256"] == named["sha256"]
        assert source["encryption"] == "age" and source["compression"] == "zstd" and source["format"] == "plain"
        assert source["type"] == remote["kind"] and source["target"].startswith(remote["kind"] + "://")
        assert source["source_host"] and source["taken_at"] and source["age_s"] >= 0
        assert source["copy"] == "copied" and source["kept"] is False
        assert [c["passed"] for c in source["checks"]] == [True, True, True]  # manifest, backup, role definitions
        assert source["path"].startswith(pull_dir + "/lift-pull-") and named["backup"] == source["path"]
        assert listing(pull_dir) == []
        assert fingerprint(cluster, live) == made["fingerprint"]
        assert provenance_of(cluster, live)["sha256"] == made["encrypted"]["sha256"]
        # Again: the copy is pulled again for the run, and the database holds it already.
        again = run("restore", target=remote["target"], name=names_of(made, "encrypted"), database=live,
                    identity_file=keys["ops"]["identity_file"], pull_dir=pull_dir)
        assert again["changed"] is False and "already restored" in again["msg"] and listing(pull_dir) == []
    finally:
        shutil.rmtree(pull_dir, ignore_errors=True)

    # latest: the newest good copy of the database restored (force: the other target's run may
    # have restored it already); pulled under /var/tmp by default, and gone afterwards.
    cluster.psql("DELETE FROM lift_simulator.simulation_run WHERE status = 'FAILED'", database=SOURCE_DB)
    latest = run("restore", target=remote["target"], name="latest", database=SOURCE_DB, force=True)
    assert latest["changed"] is True and latest["source"]["requested"] == "latest"
    assert latest["source"]["name"] == names_of(made, "plain") and latest["sha256"] == made["plain"]["sha256"]
    assert latest["source"]["path"].startswith("/var/tmp/lift-pull-") and gone(latest["source"]["path"])
    assert fingerprint(cluster, SOURCE_DB) == made["fingerprint"]
    assert provenance_of(cluster, SOURCE_DB)["sha256"] == made["plain"]["sha256"]


def test_verify_quick_and_by_restore_from_the_target(cluster, made, keys, remote):
    run = remote["run"]
    quick = run("verify", target=remote["target"], name="latest", database=SOURCE_DB)
    assert quick["changed"] is False and quick["failed_checks"] == [] and quick["sha256"] == made["plain"]["sha256"]
    assert quick["source"]["name"] == names_of(made, "plain") and gone(quick["path"])
    names = databases(cluster)
    full = run("verify", target=remote["target"], name=names_of(made, "encrypted"), level="restore",
               identity=keys["ops"]["identity"])
    assert full["failed_checks"] == [] and full["row_counts"] == made["encrypted"]["row_counts"]
    assert full["encryption"] == "age" and full["source"]["sha256"] == made["encrypted"]["sha256"]
    assert databases(cluster) == names and gone(full["path"])


def test_check_mode_pulls_nothing_and_a_kept_copy_is_found_again(cluster, made, remote):
    run, live, name = remote["run"], PREFIX + "kept_" + remote["kind"], names_of(made, "plain")
    clone_database(cluster, live)
    pull_dir = os.path.join(made["base"], "kept-" + remote["kind"])
    names, before = databases(cluster), fingerprint(cluster, live)
    planned = run("restore", check=True, target=remote["target"], name=name, database=live, pull_dir=pull_dir,
                  keep_pulled=True)
    assert planned["changed"] is True and planned["backup"] is None and "check mode: would pull" in planned["msg"]
    assert planned["source"]["name"] == name and planned["source"]["checks"]
    assert all(c["passed"] and c["name"].startswith("on the target") for c in planned["source"]["checks"])
    checked = run("verify", check=True, target=remote["target"], name="latest", database=SOURCE_DB)
    assert checked["path"] is None and "would pull it" in checked["msg"] and checked["sha256"] == made["plain"]["sha256"]
    assert not os.path.exists(pull_dir) and databases(cluster) == names and fingerprint(cluster, live) == before

    kept = run("restore", target=remote["target"], name=name, database=live, pull_dir=pull_dir, keep_pulled=True)
    assert kept["changed"] is True and kept["source"]["kept"] is True and kept["backup"] == os.path.join(pull_dir, name)
    assert listing(pull_dir) == sorted([name, name + ".globals.sql", name + ".manifest.json"])
    assert os.stat(pull_dir).st_mode & 0o777 == 0o700
    assert all(os.stat(os.path.join(pull_dir, n)).st_mode & 0o777 == 0o600 for n in listing(pull_dir))
    # The kept copy is found again: nothing pulled, nothing restored, also in check mode.
    again = run("restore", target=remote["target"], name=name, database=live, pull_dir=pull_dir, keep_pulled=True)
    assert again["changed"] is False and again["source"]["copy"] == "unchanged"
    dry = run("restore", check=True, target=remote["target"], name=name, database=live, pull_dir=pull_dir,
              keep_pulled=True)
    assert dry["changed"] is False and "already restored" in dry["msg"] and dry["source"]["copy"] == "unchanged"


def test_a_damaged_copy_is_refused_and_nothing_is_left(cluster, made, keys, remote):
    # SFTP: the backup truncated. S3: one bit of its role definitions changed, so that a kept copy
    # has its backup file published before the check that fails (and removed again).
    settings, damage = target_of(remote["kind"], remote["request"], "rsrc-damaged")
    run_module("offsite", dict(action="push", path=made["encrypted"]["path"], target=settings))
    name = names_of(made, "encrypted")
    if remote["kind"] == "sftp":
        damage(name, "truncate")
    else:
        damage(name + ".globals.sql", "flip")
    live = PREFIX + "untouched_" + remote["kind"]
    clone_database(cluster, live)
    oid = cluster.psql("SELECT oid FROM pg_database WHERE datname = '%s'" % live)
    names, before = databases(cluster), fingerprint(cluster, live)
    pull_dir = os.path.join(made["base"], "damaged-" + remote["kind"])
    for keep in (False, True):
        refused = remote["run"]("restore", expect_ok=False, target=settings, name=name, database=live,
                                identity=keys["ops"]["identity"], pull_dir=pull_dir, keep_pulled=keep)
        assert "does not match its manifest" in refused["msg"] and "nothing was restored" in refused["msg"], refused
        assert refused["source"]["target"].startswith(remote["kind"] + "://") and refused["source"]["name"] == name
        assert refused["source"]["sha256"] == made["encrypted"]["sha256"]
        assert listing(pull_dir) == []  # no copy, no partial file, no private directory
    dry = remote["run"]("restore", expect_ok=False, check=True, target=settings, name=name, database=live)
    assert "is not good, nothing was pulled" in dry["msg"]
    bad = remote["run"]("verify", expect_ok=False, target=settings, name=name, pull_dir=pull_dir)
    assert bad["failed_checks"] == ["source"] and "does not match its manifest" in bad["msg"]
    assert listing(pull_dir) == []
    assert cluster.psql("SELECT oid FROM pg_database WHERE datname = '%s'" % live) == oid
    assert databases(cluster) == names and fingerprint(cluster, live) == before


def test_no_secret_in_the_output_at_vvv(cluster, made, keys, remote, playbooks):
    settings = remote["target"]
    args = dict(cluster.connection_vars(), target=settings, name=names_of(made, "encrypted"),
                identity=keys["ops"]["identity"])
    run = run_playbook(playbooks["verify"], {"verify_args": args}, verbosity=3, json_output=False)
    output = run.stdout + run.stderr
    assert run.rc == 0 and "all" in output and names_of(made, "encrypted") in output, output[-3000:]
    secrets = [line for line in keys["ops"]["identity"].splitlines() if line.startswith("AGE-SECRET-KEY-")]
    if remote["kind"] == "sftp":
        secrets += settings["private_key"].splitlines()[1:-1]
    else:
        secrets += [settings["secret_key"], settings["access_key"]]
    assert secrets and all(len(s) > 10 for s in secrets)
    leaked = [s for s in secrets if s in output]
    assert not leaked, "secrets in the -vvv output: %d of %d" % (len(leaked), len(secrets))


def test_the_role_restores_from_a_target_in_one_step(cluster, made, keys, playbooks, request):
    # One target is enough here: the role hands the target to the restore module, tested above
    # with both; the molecule scenario `disaster` recovers through the role from each.
    target, _damage = target_of("sftp", request, "rsrc-role")
    run_module("offsite", dict(action="push", path=made["encrypted"]["path"], target=target))
    live, name = PREFIX + "role", names_of(made, "encrypted")
    clone_database(cluster, live)
    cluster.psql("DELETE FROM lift_simulator.simulation_run WHERE status = 'FAILED'", database=live)
    pull_dir = os.path.join(made["base"], "role")
    variables = dict(clean_restore_source_target=target, clean_restore_source_name=name,
                     clean_restore_pull_dir=pull_dir, clean_restore_database=live, clean_restore_become_user="postgres",
                     clean_restore_identity=keys["ops"]["identity"], clean_restore_login_port=cluster.port,
                     clean_restore_login_unix_socket=cluster.socket_dir)
    names, before = databases(cluster), fingerprint(cluster, live)
    dry = run_playbook(playbooks["role"], variables, check=True, json_output=False)
    assert dry.rc == 0, dry.stdout[-3000:]
    assert "check mode: would pull %s" % name in dry.stdout and "from %s on sftp://" % name in dry.stdout
    assert databases(cluster) == names and fingerprint(cluster, live) == before and listing(pull_dir) == []
    # A copy that is not the one expected (clean_restore_backup_sha256) never goes live.
    wrong = run_playbook(playbooks["role"], dict(variables, clean_restore_backup_sha256="0" * 64,
                                                 clean_restore_pull_dir=pull_dir + "-other"), json_output=False)
    assert wrong.rc != 0 and "(expected %s)" % ("0" * 64) in wrong.stdout, wrong.stdout[-3000:]
    assert fingerprint(cluster, live) == before
    run = run_playbook(playbooks["role"], variables, json_output=False)
    assert run.rc == 0, run.stdout[-3000:]
    assert re.search(r"outcome: +restored \(swap\)", run.stdout), run.stdout[-3000:]
    summary = run.stdout[run.stdout.rfind("Summary"):]
    assert "(copy copied, kept as %s)" % os.path.join(pull_dir, name) in summary, summary
    assert fingerprint(cluster, live) == made["fingerprint"]
    assert listing(pull_dir) == sorted([name, name + ".globals.sql", name + ".manifest.json"])
    again = run_playbook(playbooks["role"], variables, json_output=False)
    assert again.rc == 0 and "(copy unchanged, kept as" in again.stdout, again.stdout[-3000:]
    assert re.search(r"outcome: +\S*%s\S* was already restored from this backup" % live, again.stdout)
    assert re.search(r"changed=0 ", again.stdout), again.stdout[-1500:]
