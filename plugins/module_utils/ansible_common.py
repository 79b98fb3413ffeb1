# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Ansible side of the connection options: argument spec and module parameters.

The only module_utils of this collection that imports Ansible; documented in
plugins/doc_fragments/connection.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import env_fallback

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup.options import spec
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.offsite import targets
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import ConnectionParams, PgError

CONNECTION_MUTUALLY_EXCLUSIVE = [["login_host", "login_unix_socket"]]


def connection_argument_spec():
    return dict(
        login_user=dict(type="str", default="postgres", fallback=(env_fallback, ["PGUSER"])),
        login_password=dict(type="str", default="", no_log=True, fallback=(env_fallback, ["PGPASSWORD"])),
        login_host=dict(type="str", default="", fallback=(env_fallback, ["PGHOST"])),
        login_unix_socket=dict(type="path", default=""),
        login_port=spec("login_port", aliases=["port"], fallback=(env_fallback, ["PGPORT"])),
        ssl_mode=spec("ssl_mode"),
        ca_cert=dict(type="path", aliases=["ssl_rootcert"]),
        ssl_cert=dict(type="path"),
        ssl_key=dict(type="path", no_log=False),
        connect_params=dict(type="dict", default={}),
        connect_timeout=spec("connect_timeout"),
    )


def connection_params(module, database, overrides=None, overrides_name="source_connection"):
    """The modules' connection options as ConnectionParams; a bad connect_params fails the module
    before anything happens. ``overrides`` (a second connection, such as compare's
    source_connection) replaces the options it sets; a host or socket given there replaces both,
    and a user given there never gets the first connection's password."""
    p = module.params
    if overrides:
        given = dict((k, v) for k, v in overrides.items() if v is not None)
        if "login_host" in given or "login_unix_socket" in given:
            given.setdefault("login_host", "")
            given.setdefault("login_unix_socket", "")
        if "login_user" in given:
            given.setdefault("login_password", "")
        if given.get("login_host") and given.get("login_unix_socket"):
            module.fail_json(msg="%s: login_host and login_unix_socket are mutually exclusive" % overrides_name)
        p = dict(p, **given)
    try:
        return _connection_params(p, database)
    except PgError as exc:
        module.fail_json(msg=str(exc))


def _connection_params(p, database):
    return ConnectionParams(
        database=database,
        login_host=p["login_host"],
        login_port=p["login_port"],
        login_user=p["login_user"],
        login_password=p["login_password"],
        login_unix_socket=p["login_unix_socket"],
        ssl_mode=p["ssl_mode"],
        ca_cert=p["ca_cert"],
        ssl_cert=p["ssl_cert"],
        ssl_key=p["ssl_key"],
        connect_params=p["connect_params"],
        connect_timeout=p["connect_timeout"],
    )


def checks_argument_spec():
    """Options documented by the doc fragment lift_simulator.postgresql.checks."""
    return dict(
        checks=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            sql=dict(type="str", required=True),
            expect=dict(type="raw"),
            min=dict(type="float"),
        ), mutually_exclusive=[["expect", "min"]]),
        app_schema=spec("app_schema"),
    )


def loading_argument_spec():
    """Options documented by the doc fragment lift_simulator.postgresql.loading."""
    return dict(
        load_as=dict(type="str", default="owner", choices=["owner", "superuser"]),
        load_host=dict(type="str"),
        privileges=dict(type="str", default="keep", choices=["keep", "skip"]),
        lock_timeout=dict(type="int", default=60),
        stall_timeout=dict(type="int", default=300),
    )


def directory_checks_argument_spec():
    """The option documented by the doc fragment lift_simulator.postgresql.directory_checks."""
    return dict(directory_checks=spec("directory_checks"))


def offsite_target_argument_spec(required=False):
    """The option documented by the doc fragment lift_simulator.postgresql.offsite_target (a module
    that requires it also says ``required: true`` in its own DOCUMENTATION, which the fragment's
    entry takes over)."""
    return dict(target=dict(type="dict", required=required, options=dict(
        type=dict(type="str", required=True, choices=["sftp", "s3"]),
        host=dict(type="str"),
        port=dict(type="int", default=22),
        user=dict(type="str"),
        directory=dict(type="str"),
        private_key=dict(type="str", no_log=True),
        private_key_file=dict(type="path", no_log=False),
        known_hosts=dict(type="str"),
        known_hosts_file=dict(type="path"),
        connect_timeout=dict(type="int", default=10),
        bucket=dict(type="str"),
        prefix=dict(type="str", default=""),
        endpoint_url=dict(type="str"),
        region=dict(type="str"),
        addressing_style=dict(type="str", default="auto", choices=["auto", "path", "virtual"]),
        access_key=dict(type="str", no_log=True),
        secret_key=dict(type="str", no_log=True),
        session_token=dict(type="str", no_log=True),
        validate_certs=dict(type="bool", default=True),
        ca_bundle=dict(type="path"),
        object_lock_days=dict(type="int"),
        object_lock_mode=dict(type="str", default="COMPLIANCE", choices=["COMPLIANCE", "GOVERNANCE"]),
    ), mutually_exclusive=[["private_key", "private_key_file"]],
        required_if=[["type", "sftp", ["host", "user", "directory"]], ["type", "s3", ["bucket"]]]))


def target_settings(target):
    """The target's settings for offsite/targets.py: the other type's defaults left out."""
    takes = targets.SETTINGS[target["type"]][0]
    return dict((k, v) for k, v in target.items() if k == "type" or (k in takes and v is not None))


# Names an option had before it was renamed: accepted, with a deprecation warning, until then.
RENAMED_UNTIL = "2.0.0"


def renamed(option, *old_names):
    """``option`` (an argument_spec entry) also accepting ``old_names``, its earlier names, as
    deprecated aliases."""
    option = dict(option)
    option["aliases"] = list(option.get("aliases", [])) + [n for n in old_names if n not in option.get("aliases", [])]
    option["deprecated_aliases"] = [dict(name=name, version=RENAMED_UNTIL, collection_name="lift_simulator.postgresql")
                                    for name in old_names]
    return option
