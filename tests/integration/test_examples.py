# -*- coding: utf-8 -*-
"""Every module's EXAMPLES block, run as written against a real cluster.

The tasks are taken from the modules' source (the text ansible-doc shows) and run in their own
order. What changes, and nothing else: the example directories become the test's own; one
playbook-level module_defaults gives the cluster's port (the examples assume the default one; the
cluster also listens on the default socket directory, so peer authentication works as written);
the variables the examples leave to the reader (the vaulted password, `newest_backup`) are given;
and before some examples a little set-up makes the machine what the example assumes (the backups
it names exist, "Fresh machine" has no live database).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os
import re
import pwd
import shutil
import stat
import subprocess

import pytest
import yaml

from helpers import backup
from s3server import s3_server  # noqa: F401 pylint: disable=unused-import
from sftpserver import TEST_USER, sftp_server_fixture  # noqa: F401 pylint: disable=unused-import
from pitrlab import PitrLab
from pglab import LIFT_ADMIN_PASSWORD, ROOT, PgCluster, as_postgres, load_fixture, postgres_owned_dir, run_playbook

MODULE_DIR = os.path.join(ROOT, "plugins", "modules")
# The modules in the order their examples build on each other: backups first, then what reads them.
ORDER = ["backup", "backup_info", "verify", "compare", "restore", "prune", "rekey", "offsite", "pitr_info",
         "private_directory"]
# The socket directory libpq and the examples assume (Debian's).
DEFAULT_SOCKET_DIR = "/var/run/postgresql"
NAMED_BACKUPS = {
    # name in the examples: backup options that make it
    "lift_simulator_backup_20261124_080001.sql": {},
    "lift_simulator_backup_20261124_080001.sql.zst": {"compression": "zstd"},
    "lift_simulator_backup_20261117_080002.dump": {"format": "custom"},
}


def examples_of(module):
    with open(os.path.join(MODULE_DIR, module + ".py")) as handle:
        tree = ast.parse(handle.read())
    return next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "EXAMPLES" for t in node.targets))


# Modules whose examples need more than this host's test cluster, and where each of their actions runs.
ELSEWHERE = {
    # Debian's cluster layout (pg_ctlcluster, systemd units) and a pgBackRest repository with WAL:
    # molecule/pitr runs every action through playbooks/pitr_restore.yml.
    "pitr_restore": os.path.join(ROOT, "playbooks", "pitr_restore.yml"),
}


def test_every_module_has_its_examples_run_here():
    modules = sorted(name[:-3] for name in os.listdir(MODULE_DIR) if name.endswith(".py") and name != "__init__.py")
    assert sorted(ORDER + list(ELSEWHERE)) == modules


def test_the_actions_of_modules_tested_elsewhere_run_there():
    """Each action a module's examples use is one its playbook runs (and molecule runs the playbook)."""
    for module, playbook in ELSEWHERE.items():
        used = set(re.findall(r"^\s+action: (\w+)", examples_of(module), re.M))
        with open(playbook) as handle:
            ran = set(re.findall(r"^\s+action: (\w+)", handle.read(), re.M))
        assert used and used <= ran, (module, used - ran)


@pytest.fixture(scope="module")
def example_cluster():
    """A cluster of its own (the examples restore and roll back its live database), listening on
    the default socket directory as well, as a Debian host's cluster does."""
    if not os.path.isdir(DEFAULT_SOCKET_DIR):
        subprocess.run(["install", "-d", "-o", "postgres", "-g", "postgres", "-m", "2775", DEFAULT_SOCKET_DIR],
                       check=True)
    pg = PgCluster()
    pg.settings = {"unix_socket_directories": "'%s,%s'" % (pg.socket_dir, DEFAULT_SOCKET_DIR)}
    try:
        pg.start_fresh()
        pg.psql("CREATE ROLE lift_admin LOGIN PASSWORD '%s'" % LIFT_ADMIN_PASSWORD.replace("'", "''"))
        load_fixture(pg, "lift_simulator")
        yield pg
    finally:
        pg.destroy()


class ExampleRunner(object):
    def __init__(self, cluster, work):
        self.cluster = cluster
        self.work = work
        self.directories = {
            "/var/backups/lift_simulator": os.path.join(work, "backups"),
            "/srv/pg-backups": os.path.join(work, "srv-pg-backups"),
            "/etc/lift-pg-backup": os.path.join(work, "etc-lift-pg-backup"),
        }
        self.extra_vars = {
            "vault_lift_admin_password": LIFT_ADMIN_PASSWORD,
            "newest_backup": os.path.join(self.directories["/var/backups/lift_simulator"],
                                          "lift_simulator_backup_20261124_080001.sql"),
        }
        self.ran = []
        self.texts = {}
        self.patch = {}

    def tasks_of(self, module):
        text = examples_of(module)
        for example, ours in list(self.directories.items()) + list(self.texts.items()):
            text = text.replace(example, ours)
        tasks = yaml.safe_load(text)
        for task in tasks:
            if module in self.patch:
                self.patch[module](task)
        return tasks

    def run(self, module, tasks):
        play = {"name": "EXAMPLES of %s" % module, "hosts": "lift_db", "gather_facts": False,
                "module_defaults": {"group/lift_simulator.postgresql.connection": {"login_port": self.cluster.port}},
                "tasks": tasks}
        playbook = os.path.join(self.work, "examples-%s.yml" % module)
        with open(playbook, "w") as handle:
            yaml.safe_dump([play], handle, sort_keys=False)
        run = run_playbook(playbook, self.extra_vars)
        names = [task["task"]["name"] for task in run.results]
        assert run.rc == 0, "EXAMPLES of %s failed as written:\n%s\n%s" % (
            module, "\n".join("%s: %s" % (t["task"]["name"], t["hosts"].get("localhost", {}).get("msg"))
                              for t in run.results), run.stderr[-3000:])
        assert names == [task["name"] for task in tasks], names
        for task in run.results:
            result = task["hosts"]["localhost"]
            assert not result.get("failed") and not result.get("skipped"), (task["task"]["name"], result)
        self.ran.extend(names)
        return run

    def run_with_setup(self, module, setup):
        """Run a module's examples in order; before an example named in ``setup``, run its set-up."""
        segment = []
        runs = []
        for task in self.tasks_of(module):
            if task["name"] in setup and segment:
                runs.append(self.run(module, segment))
                segment = []
            if task["name"] in setup:
                setup[task["name"]]()
            segment.append(task)
        runs.append(self.run(module, segment))
        return runs


def offsite_servers(runner, s3, sftp):
    """The off-site examples' servers become the test's: the S3 endpoint and bucket, the SFTP host,
    its directory and the login's key (the examples name no port: the task's target gets the test
    server's)."""
    key = os.path.join(runner.work, "offsite_ed25519")
    shutil.copy(sftp.client_key, key)
    entry = pwd.getpwnam("postgres")
    os.chown(key, entry.pw_uid, entry.pw_gid)
    os.chmod(key, 0o600)
    runner.texts.update({"https://s3.example.net:8333": s3.endpoint, "bucket: lift-backups": "bucket: %s" % s3.bucket,
                         "host: backup.example.net": "host: 127.0.0.1", "user: lift\n": "user: %s\n" % TEST_USER,
                         "/srv/copies": os.path.join(sftp.root, "copies"),
                         "/var/lib/postgresql/.ssh/offsite_ed25519": key})

    def sftp_port(task):
        target = task["lift_simulator.postgresql.offsite"]["target"]
        if isinstance(target, dict) and target.get("type") == "sftp":
            target["port"] = sftp.port
    runner.patch["offsite"] = sftp_port
    runner.extra_vars.update(vault_s3_access_key=s3.access_key, vault_s3_secret_key=s3.secret_key,
                             offsite_known_hosts=sftp.known_hosts,
                             offsite_target=dict(s3.target_settings(), prefix="db1"))


def test_module_examples_work_as_written(example_cluster, s3_server, sftp_server):
    work = postgres_owned_dir("lift-it-examples-")
    try:
        runner = ExampleRunner(example_cluster, work)
        backups = runner.directories["/var/backups/lift_simulator"]

        def make_named_backups():
            for name, options in NAMED_BACKUPS.items():
                stem = name.split(".", maxsplit=1)[0]
                result = backup(example_cluster, backups, name_template=stem, **options)
                assert os.path.basename(result["path"]) == name

        def fresh_machine():
            example_cluster.psql("DROP DATABASE lift_simulator")

        runner.run_with_setup("backup", {})
        assert len([n for n in os.listdir(backups) if n.endswith(".manifest.json")]) == 2
        assert any(n.startswith("lift_simulator_") for n in os.listdir(runner.directories["/srv/pg-backups"]))

        runner.run_with_setup("backup_info", {})
        runner.run_with_setup("verify", {"Quick check of a backup (no database needed)": make_named_backups})

        def database_copy():
            example_cluster.psql("CREATE DATABASE lift_simulator_copy TEMPLATE lift_simulator OWNER lift_admin")

        compared = runner.run_with_setup("compare", {"Compare the live database with a backup": database_copy})[0]
        example_cluster.psql("DROP DATABASE lift_simulator_copy")
        assert compared.task("Compare the live database with a backup")["equal"] is True
        moved = compared.task("Compare with figures read elsewhere (e.g. hostvars[old_host].comparison.target), "
                              "beside the backup's")
        assert moved["changed_since_backup"] == [] and moved["equal"] is True
        assert moved["rows"][0] == {"item": "backup sha256", "source": moved["rows"][0]["source"],
                                    "target": moved["rows"][0]["source"], "equal": True}
        assert moved["table"][0].split()[-5:] == ["old:", "db1", "new:", "db2", "equal?"]

        example_cluster.psql("INSERT INTO lift_simulator.lift_system (system_key, display_name) "
                             "VALUES ('written-after-the-backups', 'marker')", database="lift_simulator")
        runs = runner.run_with_setup("restore", {"Fresh machine": fresh_machine})
        swapped = runs[0].task("Restore the newest backup beside the live database and swap it in")
        assert swapped["changed"] and swapped["previous_database"].startswith("lift_simulator_pre_restore_")
        # The rollback brought back the database the swap replaced: the marker is there again.
        assert example_cluster.psql("SELECT count(*) FROM lift_simulator.lift_system WHERE system_key = "
                                    "'written-after-the-backups'", database="lift_simulator") == "1"
        assert runs[-1].task("Go back to the database the last swap replaced")["changed"]

        preview = runner.run_with_setup("prune", {})[0].task("See what would be removed, and why")
        # Every backup is younger than 90 days, and the examples before it removed none.
        assert preview["removed"] == []

        def encrypted_backup():
            """An age key whose identity the example is given, a backup encrypted to it, the
            escrow key the example names."""
            keys = runner.directories["/etc/lift-pg-backup"]
            as_postgres(["mkdir", "-m", "0700", keys])
            as_postgres(["age-keygen", "-o", os.path.join(keys, "old.key")], stderr=subprocess.DEVNULL)
            as_postgres(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(keys, "escrow")])
            with open(os.path.join(keys, "old.key")) as handle:
                runner.extra_vars["vault_lift_age_identity_old"] = handle.read()
            old = as_postgres(["age-keygen", "-y", os.path.join(keys, "old.key")], stdout=subprocess.PIPE,
                              universal_newlines=True).stdout.strip()
            backup(example_cluster, backups, encryption="age", encryption_recipients=[old])

        rotated = runner.run_with_setup("rekey", {"Rotate the operations key; the escrow key stays": encrypted_backup})
        result = rotated[0].task("Rotate the operations key; the escrow key stays")
        assert len(result["rekeyed"]) == 1 and result["not_encrypted"] and result["changed"]

        offsite_servers(runner, s3_server, sftp_server)
        copies = runner.run_with_setup("offsite", {})[0]
        assert copies.task("Copy the newest backup off-site (an S3-compatible bucket)")["copy"] == "copied"
        assert all(c["passed"] for c in copies.task("Re-read the newest copy on the SFTP server")["checks"])
        pulled = copies.task("Bring the newest good copy back from the bucket")
        assert pulled["copy"] == "copied" and pulled["path"].startswith(backups)

        # pitr_info reads a pgBackRest repository: a cluster of its own archives into one (stanza
        # lift_simulator, as in the examples), with a full backup; the example's configuration file
        # becomes the test's (a path, as the directories).
        pitr = PitrLab(stanza="lift_simulator").start()
        try:
            pitr.pgbackrest("stanza-create")
            assert pitr.job("--type", "full").returncode == 0
            runner.patch["pitr_info"] = lambda task: task.get("lift_simulator.postgresql.pitr_info", {}).update(config=pitr.conf)
            read = runner.run_with_setup("pitr_info", {})[0].task("Read the point-in-time recovery repository")
            assert read["newest_full"]["type"] == "full" and read["archive_lag_seconds"] < 600
        finally:
            pitr.destroy()

        # The directories of the examples are in the test's postgres-owned directory: postgres makes
        # them (tests/integration/test_private_directory.py has root's case).
        state = runner.directories["/var/lib/lift-pg-backup"] = os.path.join(work, "var-lib-lift-pg-backup")
        made = runner.run_with_setup("private_directory", {
            "The scheduled job's metrics directory, which node_exporter reads":
                lambda: as_postgres(["mkdir", "-m", "0700", state])})
        logs = made[0].task("Its log directory, inside the postgres-owned backup directory, made by postgres itself")
        assert logs["made_by"] == "owner" and os.stat(os.path.join(backups, "logs")).st_uid == pwd.getpwnam("postgres").pw_uid
        assert made[-1].task("The scheduled job's metrics directory, which node_exporter reads")["changed"]
        assert stat.S_IMODE(os.stat(os.path.join(state, "metrics")).st_mode) == 0o755

        every = [task["name"] for module in ORDER for task in runner.tasks_of(module)]
        assert set(every) <= set(runner.ran)
    finally:
        shutil.rmtree(work, ignore_errors=True)
