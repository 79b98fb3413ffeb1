# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled job's failure notification: the last run's status file (what the systemd
OnFailure unit reads), the notify_command with its placeholders and environment, and the order in
which every configured notifier runs (command, mail: notify_mail.py, webhook: notify_webhook.py).
Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import pwd
import socket
import subprocess
import sys

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.notify_mail import send_mail
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.notify_webhook import send_webhook
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import PROG, status_path
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.storage import atomic_files

PLACEHOLDERS = ("log", "unit", "name", "database", "host", "status", "message")


def utc_now_text():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_status(settings, status, path=None):
    """Record the run's outcome (a dict) for the notification in ``path`` (default: the backup
    run's status file, in the state directory); a failure to write is reported, not raised."""
    path = path or status_path(settings)
    try:
        atomic_files.ensure_private_dir(settings["state_dir"])
        atomic_files.write_file_atomic(settings["state_dir"], os.path.basename(path),
                                       json.dumps(status, indent=2, sort_keys=True) + "\n", mode=0o640,
                                       replace=True)
    except OSError as exc:
        sys.stderr.write("%s: cannot write the status file %s: %s\n" % (PROG, path, exc))


def read_status(settings, path=None):
    try:
        with open(path or status_path(settings)) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def notify_values(settings, status, unit):
    """The values for the notification. ``status`` is the last run's status file: when it records
    no failure, the unit failed before the run could record one (e.g. a configuration error)."""
    if not status or status.get("status") == "success":
        status = dict(status="unknown", message="the unit %s failed before it recorded the run (a configuration "
                      "error?); see journalctl -u %s" % (unit, unit) if unit else "the backup job failed")
    return dict(log=status.get("log_path") or "", unit=unit or "", name=settings["name"],
                database=settings["database"], host=socket.getfqdn(), status=status.get("status") or "unknown",
                message=status.get("message") or "the backup job failed")


def substitute(argv, values):
    """Replace {log}, {unit}, ... in each argument (only those: other braces stay as they are)."""
    result = []
    for arg in argv:
        for key in PLACEHOLDERS:
            arg = arg.replace("{%s}" % key, values[key])
        result.append(arg)
    return result


def configured_notifiers(settings):
    """The names of the notifiers the settings configure, in the order they run."""
    return [name for name, on in (("command", settings["notify_command"]),
                                  ("mail", settings.get("notify_mail_to")),
                                  ("webhook", settings.get("notify_webhook_url"))) if on]


def run_notify(settings, status, unit, reporter):
    """Run every configured notifier (notify_command, mail, webhook); returns 0 when all of them
    succeeded (or none is configured), 1 when any failed. One failing does not stop the others.

    It runs as the job's user: cli.main() has switched to that user already (the systemd
    notification unit starts it as that user, the cron job's command after switching)."""
    values = notify_values(settings, status, unit)
    notifiers = configured_notifiers(settings)
    if not notifiers:
        reporter.error("backup job %s failed: %s (no notifier configured)"
                       % (settings["name"], values["message"]))
        return 0
    time_text = utc_now_text()
    failed = 0
    for name in notifiers:
        if name == "command":
            problem = run_command(settings["notify_command"], values, settings["notify_timeout"])
        elif name == "mail":
            problem = send_mail(settings, values, time_text, default_sender())
        else:
            problem = send_webhook(settings, values, time_text)
        if problem:
            failed += 1
            reporter.error(problem)
    return 1 if failed else 0


def default_sender():
    """<the job user>@<this host's name>: the From address when notify_mail_from is not set."""
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = "lift-pg-backup"
    return "%s@%s" % (user, socket.getfqdn())


def run_command(command, values, timeout):
    """Run the notification ``command`` (an argv with placeholders) with ``values`` in its
    arguments and in LIFT_BACKUP_* variables; None when it succeeded, else what went wrong."""
    argv = substitute(command, values)
    env = dict(os.environ)
    env.update(("LIFT_BACKUP_%s" % key.upper(), value) for key, value in values.items())
    try:
        code = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, timeout=timeout, check=False, cwd="/").returncode
    except (OSError, subprocess.SubprocessError) as exc:
        return "the notification command %s failed: %s" % (argv[0], exc)
    if code != 0:
        return "the notification command %s exited with %d" % (argv[0], code)
    return None
