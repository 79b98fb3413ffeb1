# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options the backup and prune modules share with the scheduled job, written once.

Each option's type, default, choices and lower bound. The modules build their argument_spec
lines from here (``spec``), and the scheduled job (module_utils/job/settings.py) builds its
settings from the same entries, so that a choice, a default or a range is never written twice.
ansible_common.py takes the connection and directory_checks entries from here too. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lift_simulator.postgresql.plugins.module_utils import codecs
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.app import lift_simulator as checklist
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import naming
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import path_trust

# pg_dump waits this long for its table locks (held by a migration, say) before it gives up, and
# the whole pipeline may go this many seconds without progress (stall_watch.py).
DEFAULT_LOCK_WAIT_TIMEOUT = "120s"
DEFAULT_STALL_TIMEOUT = 300

TIMEZONES = ("utc", "local")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class Option(object):
    """One option: ``kind`` str, path, int, bool or list (of strings); ``minimum`` the smallest whole
    number allowed."""

    def __init__(self, kind, default=None, choices=None, minimum=None):
        self.kind = kind
        self.default = default
        self.choices = tuple(choices) if choices is not None else None
        self.minimum = minimum

    def spec(self, **extra):
        """The option as a line of an Ansible argument_spec (``extra``: aliases, required, ...)."""
        line = dict(type=self.kind)
        if self.kind == "list":
            line["elements"] = "str"
        if self.default is not None:
            line["default"] = self.default
        if self.choices is not None:
            line["choices"] = list(self.choices)
        line.update(extra)
        return line


OPTIONS = dict(
    # the backup module
    database=Option("str", "lift_simulator"),
    format=Option("str", "plain", naming.FORMATS),
    compression=Option("str", None, codecs.NAMES),
    compression_level=Option("int"),
    jobs=Option("int", None, minimum=1),
    name_template=Option("str", naming.DEFAULT_NAME_TEMPLATE),
    name_timezone=Option("str", "utc", TIMEZONES),
    bin_dir=Option("path"),
    check_free_space=Option("bool", True),
    lock_wait_timeout=Option("str", DEFAULT_LOCK_WAIT_TIMEOUT),
    stall_timeout=Option("int", DEFAULT_STALL_TIMEOUT, minimum=0),
    role_definitions=Option("bool", True),
    role_passwords=Option("bool", False),
    log_dir=Option("path"),
    app_schema=Option("str", checklist.DEFAULT_APP_SCHEMA),
    encryption=Option("str", "none", codecs.ENCRYPTION_NAMES),
    encryption_recipients=Option("list", []),
    manifest_detail=Option("str", "full", ("full", "minimal")),
    # the prune module
    keep_last=Option("int", 4, minimum=0),
    keep_daily=Option("int", minimum=0),
    keep_weekly=Option("int", minimum=0),
    keep_monthly=Option("int", minimum=0),
    max_age_days=Option("int", minimum=0),
    include_legacy=Option("bool", False),
    verify_checksums=Option("bool", True),
    calendar_timezone=Option("str", "utc", TIMEZONES),
    legacy_timezone=Option("str", "local", tuple(reversed(TIMEZONES))),
    # ansible_common.py (doc fragments connection and directory_checks)
    directory_checks=Option("str", path_trust.STRICT, (path_trust.STRICT, path_trust.WARN)),
    login_port=Option("int", 5432, minimum=1),
    ssl_mode=Option("str", "prefer", SSL_MODES),
    connect_timeout=Option("int", 10, minimum=1),
)


def spec(name, **extra):
    """The argument_spec line of the option ``name``."""
    return OPTIONS[name].spec(**extra)
