# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a point-in-time recovery puts things on a Debian database host, and the temporary
cluster's configuration.

The recovered copy is a Debian cluster of its own, ``<cluster>_pitr`` (pg_lsclusters lists it,
systemd runs it as ``postgresql@<version>-<cluster>_pitr``), with its data directory beside the
running cluster's and its configuration in ``/etc/postgresql/<version>/<cluster>_pitr``: the
running cluster's ``postgresql.conf`` included, then the few settings that make it another
instance (data directory, port, pid file, name), archiving off, messages in English (read by
recovery_log.py) and no logging collector (the log is Debian's per-cluster file). Names and text
only (no I/O, no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import re

SUFFIX = "_pitr"
BASE_DATA = "/var/lib/postgresql"
BASE_CONF = "/etc/postgresql"
LOG_DIR = "/var/log/postgresql"
RUN_DIR = "/var/run/postgresql"
RECORD = "lift-pitr-recovery.json"
REPLACED = ".replaced-"
# The files of the temporary cluster's configuration directory, all written by this collection.
CONFIG_FILES = ("postgresql.conf", "start.conf", "pg_ctl.conf", "environment", RECORD)

_VERSION_RE = re.compile(r"^\d{1,2}$")
# Debian's cluster names may hold more, but systemd's %I breaks on dashes: letters, digits, '_'.
_CLUSTER_RE = re.compile(r"^[A-Za-z0-9_]{1,40}$")


class LayoutError(ValueError):
    pass


class Layout(object):
    """The paths of the running cluster (``main_*``) and of its recovered copy (``copy_*``)."""

    def __init__(self, version, cluster):
        version = str(version)
        if not _VERSION_RE.match(version):
            raise LayoutError("%r is not a PostgreSQL major version (e.g. 15)" % (version,))
        if not _CLUSTER_RE.match(cluster or "") or cluster.endswith(SUFFIX):
            raise LayoutError("%r is not a cluster name this recovery handles (letters, digits and _, "
                              "not ending in %s)" % (cluster, SUFFIX))
        self.version = version
        self.cluster = cluster
        self.copy = cluster + SUFFIX

    def data_dir(self, cluster):
        return os.path.join(BASE_DATA, self.version, cluster)

    def conf_dir(self, cluster):
        return os.path.join(BASE_CONF, self.version, cluster)

    def log_file(self, cluster):
        return os.path.join(LOG_DIR, "postgresql-%s-%s.log" % (self.version, cluster))

    def unit(self, cluster):
        return "postgresql@%s-%s.service" % (self.version, cluster)

    def pid_file(self, cluster):
        return os.path.join(RUN_DIR, "%s-%s.pid" % (self.version, cluster))

    @property
    def main_data(self):
        return self.data_dir(self.cluster)

    @property
    def main_conf(self):
        return self.conf_dir(self.cluster)

    @property
    def copy_data(self):
        return self.data_dir(self.copy)

    @property
    def copy_conf(self):
        return self.conf_dir(self.copy)

    @property
    def copy_tablespaces(self):
        return self.copy_data + "_tablespaces"

    @property
    def record(self):
        return os.path.join(self.copy_conf, RECORD)

    def replaced_data(self, when):
        """Where the running cluster's data directory goes at the switch (kept, never removed)."""
        return self.main_data + REPLACED + stamp(when)

    def to_dict(self):
        return {"version": self.version, "cluster": self.cluster, "copy_cluster": self.copy,
                "data_dir": self.main_data, "copy_data_dir": self.copy_data, "copy_conf_dir": self.copy_conf,
                "copy_log": self.log_file(self.copy), "copy_unit": self.unit(self.copy),
                "unit": self.unit(self.cluster), "log": self.log_file(self.cluster)}


def stamp(when):
    """UTC time as in the collection's backup names: 20261124T140300Z."""
    if isinstance(when, (int, float)):
        when = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def quote_setting(value):
    """A postgresql.conf string value."""
    return "'%s'" % str(value).replace("\\", "\\\\").replace("'", "''")


def copy_config(layout, port, listen_addresses="localhost"):
    """The temporary cluster's postgresql.conf: the running cluster's, then what makes it another
    instance. Later settings win, so these override whatever the included file says."""
    settings = [
        ("data_directory", quote_setting(layout.copy_data)),
        ("port", "%d" % int(port)),
        ("external_pid_file", quote_setting(layout.pid_file(layout.copy))),
        ("cluster_name", quote_setting("%s/%s" % (layout.version, layout.copy))),
        ("listen_addresses", quote_setting(listen_addresses)),
        ("archive_mode", "off"),
        ("logging_collector", "off"),
        ("log_destination", quote_setting("stderr")),
        ("lc_messages", quote_setting("C")),
        ("hot_standby", "on"),
    ]
    lines = ["# A point-in-time recovery of %s/%s, beside it (lift_simulator.postgresql.pitr_restore)."
             % (layout.version, layout.cluster),
             "# Written by playbooks/pitr_restore.yml; removed when the recovery is put in service or discarded.",
             "include %s" % quote_setting(os.path.join(layout.main_conf, "postgresql.conf"))]
    lines += ["%s = %s" % (name, value) for name, value in settings]
    return "\n".join(lines) + "\n"


def start_conf():
    """Debian's start.conf: never started at boot, only by the recovery."""
    return "# lift_simulator.postgresql.pitr_restore: started by the recovery only\nmanual\n"


def inside(path, other):
    """Whether ``path`` is ``other`` or lies inside it (both absolute, normalised)."""
    path = os.path.normpath(path)
    other = os.path.normpath(other)
    return path == other or path.startswith(other.rstrip("/") + "/")


def overlaps(first, second):
    return inside(first, second) or inside(second, first)
