# -*- coding: utf-8 -*-
"""examples/environments: three environments (dev, test, prod) with their own backup strategy,
rendered by the role scheduled_backup as it would install them, and read back.

ansible-inventory shows which host is in which environment and what it inherits; the playbook
tests/integration/playbooks/render_environments.yml runs the role's own checks (tasks/variables.yml)
and its own templates for every host of the example inventory (connection local) into a temporary
directory; the test reads the timers (OnCalendar), the job's JSON configuration (retention,
notifiers, off-site targets file) and the off-site targets, and has the installed job
(``lift-pg-backup --print-config``) read each configuration as it would at run time.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import configparser
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from pglab import ROOT, SYSTEM_PYTHON, VENV_BIN, run_playbook
from lift_job import make_layout

INVENTORY = os.path.join(ROOT, "examples", "environments", "inventory.yml")
TEMPLATES = os.path.join(ROOT, "roles", "scheduled_backup", "templates")
UNIT = "lift-pg-backup-lift_simulator"
RETENTION_KEYS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "max_age_days")
# What each environment is meant to get (examples/environments/group_vars).
EXPECTED = {
    "dev": dict(hosts=["dev-db1.example.org"], on_calendar="*-*-* 01:30:00", delay=None,
                retention=dict(keep_last=3, keep_daily=None, keep_weekly=None, keep_monthly=None, max_age_days=7),
                targets=[], mail_to=[], webhook=None, encryption="none"),
    "test": dict(hosts=["test-db1.example.org"], on_calendar="Tue *-*-* 08:00:00", delay=None,
                 retention=dict(keep_last=4, keep_daily=None, keep_weekly=4, keep_monthly=None, max_age_days=None),
                 targets=[("nas", "sftp")], mail_to=["dba-test@example.org"], webhook=None, encryption="none"),
    "prod": dict(hosts=["prod-db1.example.org", "prod-db2.example.org"], on_calendar="*-*-* 02:30:00", delay="900",
                 retention=dict(keep_last=7, keep_daily=7, keep_weekly=5, keep_monthly=12, max_age_days=None),
                 targets=[("nas", "sftp"), ("s3-locked", "s3")], mail_to=["dba@example.org", "oncall@example.org"],
                 webhook="https://alerts.example.org/hooks/lift-backup", encryption="age"),
}


@pytest.fixture(scope="module")
def inventory():
    out = subprocess.run([os.path.join(VENV_BIN, "ansible-inventory"), "-i", INVENTORY, "--list"], check=True,
                         stdout=subprocess.PIPE, universal_newlines=True, cwd=ROOT,
                         env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def rendered():
    root = tempfile.mkdtemp(prefix="lift-it-env-", dir="/tmp")
    try:
        run = run_playbook("render_environments.yml", dict(
            render_root=root, role_templates=TEMPLATES, ansible_connection="local",
            ansible_python_interpreter=SYSTEM_PYTHON), inventory=INVENTORY, json_output=False)
        assert run.rc == 0, run.stdout[-4000:] + run.stderr[-4000:]
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def layout():
    base = tempfile.mkdtemp(prefix="lift-it-env-job-", dir="/tmp")
    yield make_layout(base)
    shutil.rmtree(base, ignore_errors=True)


def read_unit(path):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    with open(path) as handle:
        parser.read_string("".join(line for line in handle if not line.startswith("#")))
    return parser


def host_files(root, host):
    return os.path.join(root, host)


def test_every_database_host_is_in_exactly_one_environment(inventory):
    lift_db = set(inventory["lift_db"]["children"])
    assert lift_db == set(EXPECTED)
    seen = []
    for environment, expected in EXPECTED.items():
        assert sorted(inventory[environment]["hosts"]) == expected["hosts"]
        seen.extend(expected["hosts"])
    assert sorted(seen) == sorted(set(seen)) == sorted(inventory["_meta"]["hostvars"])
    for environment, expected in EXPECTED.items():
        for host in expected["hosts"]:
            variables = inventory["_meta"]["hostvars"][host]
            assert variables["scheduled_backup_format"] == "custom"  # group_vars/all.yml
            assert variables["scheduled_backup_on_calendar"] == expected["on_calendar"]


@pytest.mark.parametrize("environment", sorted(EXPECTED))
def test_the_role_renders_the_environments_strategy(rendered, layout, environment):
    expected = EXPECTED[environment]
    for host in expected["hosts"]:
        base = host_files(rendered, host)
        timer = read_unit(os.path.join(base, UNIT + ".timer"))
        assert timer["Timer"]["OnCalendar"] == expected["on_calendar"]
        assert timer["Timer"].get("RandomizedDelaySec") == expected["delay"]
        assert timer["Timer"]["Persistent"] == "true" and timer["Timer"]["Unit"] == UNIT + ".service"
        service = read_unit(os.path.join(base, UNIT + ".service"))
        assert service["Unit"]["OnFailure"] == "lift-pg-backup-notify-lift_simulator.service"

        with open(os.path.join(base, "lift_simulator.json")) as handle:
            config = json.load(handle)
        assert dict((k, config[k]) for k in RETENTION_KEYS) == expected["retention"]
        assert config["format"] == "custom" and config["encryption"] == expected["encryption"]
        assert config["notify_mail_to"] == expected["mail_to"]
        assert config["notify_webhook_url"] == expected["webhook"]
        offsite_file = os.path.join(base, "lift_simulator.offsite.json")
        if expected["targets"]:
            assert config["offsite_targets_file"] == "/etc/lift-pg-backup/lift_simulator.offsite.json"
            with open(offsite_file) as handle:
                targets = json.load(handle)
            assert [(t["name"], t["type"]) for t in targets] == expected["targets"]
            # Secrets come from the (vaulted) vault.yml, resolved in the targets file only.
            assert all(not str(value).startswith("{{") for t in targets for value in t.values())
            with open(os.path.join(base, "lift_simulator.json")) as handle:
                assert "REPLACE-" not in handle.read()
        else:
            assert config["offsite_targets_file"] is None and not os.path.exists(offsite_file)
        if environment == "prod":
            s3 = [t for t in targets if t["type"] == "s3"][0]
            assert s3["prefix"] == host.split(".")[0] and s3["object_lock_days"] == 30
            assert config["notify_webhook_token_file"] == "/etc/lift-pg-backup/lift_simulator.webhook-token"
            assert config["notify_mail_from"] == "backup@%s" % host
        else:
            assert config["notify_webhook_token_file"] is None
        for name in os.listdir(base):  # the webhook token is in no file the role renders but its own
            with open(os.path.join(base, name)) as handle:
                assert "REPLACE-WEBHOOK-TOKEN" not in handle.read(), name

        # The job itself accepts the configuration and reads the same strategy from it.
        command, lib = layout
        shown = subprocess.run([SYSTEM_PYTHON, "-I", command, "--config", os.path.join(base, "lift_simulator.json"),
                                "--print-config"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True, env=dict(os.environ, LIFT_PG_BACKUP_LIB=lib), check=False)
        assert shown.returncode == 0, shown.stderr
        effective = json.loads(shown.stdout)
        assert dict((k, effective[k]) for k in RETENTION_KEYS) == expected["retention"]
        assert effective["notify_mail_to"] == expected["mail_to"]


def test_the_environments_differ_where_intended(rendered):
    """Schedules and retention are each environment's own: no two environments render the same."""
    seen = {}
    for environment, expected in EXPECTED.items():
        base = host_files(rendered, expected["hosts"][0])
        with open(os.path.join(base, "lift_simulator.json")) as handle:
            config = json.load(handle)
        timer = read_unit(os.path.join(base, UNIT + ".timer"))["Timer"]["OnCalendar"]
        seen[environment] = (timer, tuple(config[k] for k in RETENTION_KEYS))
    assert len(set(t for t, _r in seen.values())) == 3 and len(set(r for _t, r in seen.values())) == 3
