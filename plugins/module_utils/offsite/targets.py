# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An off-site target as options (the doc fragment ``offsite_target``) turned into its storage
driver: ``sftp`` (storage/sftp.py, paramiko) or ``s3`` (storage/s3.py, boto3).

One table says which settings each type takes and needs, so that the modules' argument spec, the
scheduled job's settings and the checks here agree; the driver checks the values (an s3 target's
``object_lock_days`` and ``object_lock_mode``: storage/s3.py). Pure Python; the drivers are imported only
when a target of their type is opened (a host without boto3 can still use SFTP).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

TYPES = ("sftp", "s3")

# type: (settings it takes, settings it needs)
SETTINGS = {
    "sftp": (("host", "port", "user", "directory", "private_key", "private_key_file", "known_hosts",
              "known_hosts_file", "connect_timeout"),
             ("host", "user", "directory")),
    "s3": (("bucket", "prefix", "endpoint_url", "region", "addressing_style", "access_key", "secret_key",
            "session_token", "validate_certs", "ca_bundle", "object_lock_days", "object_lock_mode"),
           ("bucket",)),
}
SECRETS = ("private_key", "access_key", "secret_key", "session_token")


class TargetError(ValueError):
    pass


def settings_of(target):
    """The settings of ``target`` (a dict with ``type``) that are set, checked against the table:
    raises TargetError naming an unknown type, a setting of the other type, or a missing one."""
    kind = target.get("type")
    if kind not in SETTINGS:
        raise TargetError("target type %r is not one of %s" % (kind, ", ".join(TYPES)))
    takes, needs = SETTINGS[kind]
    given = dict((k, v) for k, v in target.items() if k != "type" and v not in (None, "", []))
    foreign = sorted(k for k in given if k not in takes)
    if foreign:
        raise TargetError("a %s target does not take %s" % (kind, ", ".join(foreign)))
    missing = [k for k in needs if k not in given]
    if missing:
        raise TargetError("a %s target needs %s" % (kind, ", ".join(missing)))
    if kind == "sftp" and not (given.get("private_key") or given.get("private_key_file")):
        raise TargetError("an sftp target needs private_key or private_key_file (key authentication only)")
    if kind == "sftp" and not (given.get("known_hosts") or given.get("known_hosts_file")):
        raise TargetError("an sftp target needs known_hosts or known_hosts_file: the server's host key is checked, "
                          "never accepted blindly")
    if kind == "s3" and bool(given.get("access_key")) != bool(given.get("secret_key")):
        raise TargetError("an s3 target needs access_key and secret_key together (or neither: the AWS environment "
                          "or profile)")
    return kind, given


def open_target(target):
    """The storage driver of ``target`` (not connected yet: drivers connect on first use)."""
    kind, given = settings_of(target)
    if kind == "sftp":
        from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.sftp import SFTPStorage
        return SFTPStorage(**given)
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage.s3 import S3Storage
    return S3Storage(**given)


def describe(target):
    """The target as reports name it, without secrets: ``sftp://user@host:port/dir`` or
    ``s3://bucket/prefix (endpoint)``."""
    kind, given = settings_of(target)
    if kind == "sftp":
        directory = given["directory"]
        return "sftp://%s@%s:%s%s%s" % (given["user"], given["host"], given.get("port", 22),
                                        "" if directory.startswith("/") else "/~/", directory)
    where = "s3://%s/%s" % (given["bucket"], given.get("prefix", "").strip("/"))
    return where.rstrip("/") + (" (%s)" % given["endpoint_url"] if given.get("endpoint_url") else "")
