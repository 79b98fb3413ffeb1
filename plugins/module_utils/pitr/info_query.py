# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Asking pgBackRest about a stanza: ``pgbackrest info --output=json`` (the stanza's entry, whatever
its status) and, optionally, ``repo-ls`` of its WAL archive, then the summary of info.py. Runs
pgbackrest through recovery_repository.run() (argv, as the current OS user: the module's become
user or the job's unit user, postgres); pgBackRest reads the repository's secrets from its own
configuration file, never from a command line. No Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import info as pitr_info
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pitr import recovery_repository

DEFAULT_CONFIG = "/etc/pgbackrest/pgbackrest.conf"
DEFAULT_TIMEOUT = 300


class QueryError(Exception):
    """pgBackRest could not be run, or did not answer as expected; the message says why (no secret)."""


def info_argv(stanza, config=None):
    argv = [recovery_repository.PROGRAM]
    if config:
        argv.append("--config=%s" % config)
    return argv + ["--stanza=%s" % stanza, "--output=json", "info"]


def read_entry(stanza, config=None, timeout=DEFAULT_TIMEOUT):
    """The stanza's entry of ``pgbackrest info`` (info.parse_info), whatever its status."""
    argv = info_argv(stanza, config)
    try:
        code, out, err = recovery_repository.run(argv, timeout)
    except recovery_repository.RepositoryError as exc:
        raise QueryError(str(exc))
    if code != 0:
        raise QueryError("pgbackrest info failed with exit code %d: %s" % (
            code, " ".join(recovery_repository.said(err, out)[-8:]) or "no message"))
    try:
        return pitr_info.parse_info(out, stanza)
    except pitr_info.InfoError as exc:
        raise QueryError(str(exc))


def read_listing(stanza, config=None, timeout=DEFAULT_TIMEOUT):
    """repo-ls of archive/<stanza> (recursive, JSON): {relative path: entry}."""
    try:
        return recovery_repository.archive_listing(stanza, config, timeout)
    except recovery_repository.RepositoryError as exc:
        raise QueryError(str(exc))


def query(stanza, config=None, list_archive=True, timeout=DEFAULT_TIMEOUT, now=None):
    """(summary, entry): info.summarize() of the stanza, with the archive listed when it exists and
    ``list_archive`` is true."""
    entry = read_entry(stanza, config, timeout)
    listing = None
    code = pitr_info.status_of(entry)[0]
    if list_archive and pitr_info.current_archive_id(entry) and code != pitr_info.STATUS_OTHER:
        listing = read_listing(stanza, config, timeout)
    return pitr_info.summarize(entry, listing, now), entry
