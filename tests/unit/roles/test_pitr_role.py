# -*- coding: utf-8 -*-
"""The role pitr's declarations agree with each other: every default is declared in the argument specs
(and the reverse), the repository_client entry point takes the same variables, the pgBackRest
configuration template writes the repository's options for each type, and the job's command
imports nothing of Ansible."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import jinja2
import yaml
from ansible.plugins.filter.core import comment

from test_scheduled_backup_files import import_closure

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(ROOT, "roles", "pitr")


def load(*path):
    with open(os.path.join(ROLE, *path)) as handle:
        return yaml.safe_load(handle)


def specs():
    return load("meta", "argument_specs.yml")["argument_specs"]


def test_every_default_is_declared_and_the_reverse():
    assert set(load("defaults", "main.yml")) == set(specs()["main"]["options"])


def test_literal_defaults_agree_with_the_specs():
    defaults = load("defaults", "main.yml")
    for name, option in specs()["main"]["options"].items():
        if "{{" in str(defaults[name]):
            assert "default" not in option, name  # computed: the description says from what
        else:
            assert option.get("default") == defaults[name], name


def test_repository_client_takes_the_same_variables():
    main, client = specs()["main"]["options"], specs()["repository_client"]["options"]
    assert set(client) < set(main)
    assert {"pitr_repo_type", "pitr_s3_key_secret", "pitr_cipher_pass", "pitr_stanza"} <= set(client)
    for name, option in client.items():
        assert option == main[name], name
    assert os.path.isfile(os.path.join(ROLE, "tasks", "repository_client.yml"))


def test_secrets_are_no_log():
    for entry in specs().values():
        for name in ("pitr_s3_key_secret", "pitr_cipher_pass"):
            assert entry["options"][name]["no_log"] is True


def render(**variables):
    values = dict(load("defaults", "main.yml"))
    values.update(ansible_managed="Ansible managed", __pitr_data_dir="/var/lib/postgresql/15/main", __pitr_port=5432,
                  __pitr_log_dir="/var/log/pgbackrest", __pitr_spool_dir="/var/spool/pgbackrest",
                  __pitr_lock_dir="/var/spool/pgbackrest/lock", __pitr_socket_dir="/var/run/postgresql")
    values.update(variables)
    role_vars = load("vars", "main.yml")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROLE, "templates")), trim_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["comment"] = comment
    env.filters["bool"] = lambda value: value in (True, "yes", "true", "1", 1)
    values["__pitr_ca_file"] = role_vars["__pitr_ca_file"]
    for name in ("__pitr_cipher", "__pitr_ca"):
        values[name] = env.from_string(role_vars[name]).render(values).strip()
    text = env.get_template("pgbackrest.conf.j2").render(values)
    sections, current = {}, None
    for line in text.splitlines():
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        elif line and not line.startswith("#"):
            key, value = line.split("=", 1)
            assert key not in current, "%s twice" % key
            current[key] = value
    return sections


def test_posix_configuration():
    conf = render()
    assert conf["global"]["repo1-type"] == "posix" and conf["global"]["repo1-path"] == "/var/lib/pgbackrest"
    assert not [k for k in conf["global"] if "cipher" in k or "s3" in k]
    assert conf["global"]["lock-path"] == "/var/spool/pgbackrest/lock"
    assert conf["lift_simulator"] == {"pg1-path": "/var/lib/postgresql/15/main", "pg1-port": "5432",
                                      "pg1-socket-path": "/var/run/postgresql"}
    assert "repo1-retention-archive" not in conf["global"]
    assert render(pitr_retention_archive=3)["global"]["repo1-retention-archive"] == "3"


def test_s3_configuration_is_encrypted_by_default():
    conf = render(pitr_repo_type="s3", pitr_repo_path="/pitr/db1", pitr_s3_endpoint="s3.example.net", pitr_s3_bucket="b",
                  pitr_s3_key="AK", pitr_s3_key_secret="SK", pitr_cipher_pass="pass=word", pitr_s3_ca_pem="PEM")["global"]
    assert conf["repo1-cipher-type"] == "aes-256-cbc" and conf["repo1-cipher-pass"] == "pass=word"
    assert conf["repo1-s3-key"] == "AK" and conf["repo1-s3-key-secret"] == "SK"
    assert conf["repo1-storage-ca-file"] == "/etc/pgbackrest/repo1-ca.pem"
    assert conf["repo1-storage-verify-tls"] == "y" and conf["repo1-storage-port"] == "443"
    assert conf["repo1-s3-uri-style"] == "path"
    plain = render(pitr_repo_type="s3", pitr_cipher_type="none", pitr_s3_ca_file="/etc/ssl/ca.pem")["global"]
    assert "repo1-cipher-type" not in plain and plain["repo1-storage-ca-file"] == "/etc/ssl/ca.pem"


def test_repository_host_configuration():
    conf = render(pitr_repo_type="host", pitr_repo_host="backup1", pitr_cipher_pass="x")["global"]
    assert conf["repo1-host"] == "backup1" and conf["repo1-host-user"] == "pgbackrest"
    # The repository host encrypts (its own configuration holds the passphrase).
    assert "repo1-cipher-pass" not in conf


def test_extra_settings_come_last():
    conf = render(pitr_extra_settings={"archive-async": "y", "process-max": 4})["global"]
    assert conf["archive-async"] == "y"


def test_the_command_imports_no_ansible_transitively():
    needed, others = import_closure(os.path.join(ROLE, "files", "lift_pitr_backup.py"))
    assert {"job/pitr_job.py", "job/pitr_metrics.py", "pitr/info.py", "pitr/info_query.py"} <= needed
    assert "ansible_common.py" not in needed and "ansible" not in others
