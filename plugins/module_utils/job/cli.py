# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lift-pg-backup command line: its options (one per setting, settings.py), --help, and
main(): settings, the switch to the job's user, then the notification, one run or one restore
drill (--drill, job/drill.py).
Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import signal
import sys

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import drill
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import drill_record
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import runner
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.notify import read_status, run_notify
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.presentation import Reporter
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.privileges import switch_user
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import (
    CONFIG_DIR, OPTION_NAMES, PROG, SETTINGS, ConfigError, load_settings)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.version import COLLECTION_VERSION

DESCRIPTION = (
    "Take a backup of a PostgreSQL database with the code of lift_simulator.postgresql's backup\n"
    "module, verify it (checksum, manifest, pg_dump trailer or archive table of contents), apply\n"
    "the retention rules (the prune module's code; never after a failed backup or verification),\n"
    "and record the run: a log file in the logs directory, Prometheus textfile metrics, a status\n"
    "file for the failure notification. Overlapping runs are prevented by a lock.\n\n"
    "Settings come from the configuration file (JSON, written by the role\n"
    "lift_simulator.postgresql.scheduled_backup); the options below override it. In a terminal\n"
    "the command shows the progress and a summary; otherwise (systemd, cron) it prints plain\n"
    "log lines.")
EPILOG = (
    "files:\n"
    "  /etc/lift-pg-backup/<name>.json          configuration (default name: lift_simulator)\n"
    "  <state_dir>/<name>.lock                  lock (flock) held while a run is going on\n"
    "  <state_dir>/<name>.last-run.json         outcome of the last run (for --notify-failure)\n"
    "  <metrics_dir>/lift_pg_backup_<name>.prom node_exporter textfile metrics\n"
    "  <log_dir>/<backup name>.log              one log per run\n"
    "  <log_dir>/<name>_drill_<time>.log        one log per restore drill (--drill)\n"
    "  <state_dir>/drills/<name>-<time>.json    report of each restore drill\n"
    "  <metrics_dir>/lift_pg_backup_drill_<name>.prom  restore drill metrics\n\n"
    "exit status:\n"
    "  0 success, 1 the run failed (the log says why), 2 usage or configuration error,\n"
    "  75 another backup is running (without --wait), or another drill (--drill)\n\n"
    "examples:\n"
    "  sudo lift-pg-backup                        run the configured job now (switches to its user)\n"
    "  sudo lift-pg-backup --wait                 wait for a running backup first\n"
    "  lift-pg-backup --print-config              show the effective settings\n"
    "  sudo lift-pg-backup --drill                restore drill: restore the newest backups into scratch\n"
    "                                             databases, check them, drop them\n"
    "  lift-pg-backup --config /etc/lift-pg-backup/lift_simulator.json --no-retention")
_METAVARS = {"path": "PATH", "int": "N"}


def build_parser():
    parser = argparse.ArgumentParser(prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="configuration file (default: %s/<name>.json when it exists)" % CONFIG_DIR)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="live progress and a summary (default: when stderr is a terminal)")
    parser.add_argument("--print-config", action="store_true", help="print the effective settings (JSON) and exit")
    parser.add_argument("--notify-failure", action="store_true",
                        help="only run notify_command about the last run (used by the systemd OnFailure unit)")
    parser.add_argument("--unit", default="", help="with --notify-failure: the unit that failed")
    parser.add_argument("--drill", action="store_true",
                        help="run a restore drill instead of a backup: the newest good backup (and the newest copy on "
                             "each off-site target) restored into a scratch database, checked there and dropped")
    parser.add_argument("--version", action="version", version="%s (lift_simulator.postgresql %s)"
                        % (PROG, COLLECTION_VERSION))
    group = parser.add_argument_group("settings (override the configuration file)")
    for setting in SETTINGS:
        option, key, text = OPTION_NAMES[setting.key], setting.key, setting.text
        if setting.kind == "bool":
            group.add_argument(option, dest=key, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif setting.kind in ("argv", "list"):
            group.add_argument(option, dest=key, metavar="JSON", type=_json_list, default=None,
                               help=text + " (a JSON list)")
        elif setting.choices is not None:
            group.add_argument(option, dest=key, default=None, choices=list(setting.choices), help=text)
        else:
            group.add_argument(option, dest=key, default=None, metavar=_METAVARS.get(setting.kind, "TEXT"), help=text)
    group.add_argument("--no-metrics", dest="metrics_dir", action="store_const", const="",
                       help="write no metrics")
    return parser


def _json_list(text):
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a JSON list: %s" % text)
    return value


def parse_args(argv):
    return build_parser().parse_args(argv)


def last_status(settings):
    """The status the failure notification reports: the backup run's or the restore drill's,
    whichever finished last (the backup and the drill units share the OnFailure unit)."""
    found = [s for s in (read_status(settings), drill_record.read_status(settings)) if isinstance(s, dict)]
    return max(found, key=lambda s: str(s.get("finished_at") or "")) if found else None


def main(argv=None):
    """The command; returns its exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    interactive = args.progress if args.progress is not None else sys.stderr.isatty()
    reporter = Reporter(interactive)
    try:
        settings, config_path = load_settings(args)
        if args.print_config:
            sys.stdout.write(json.dumps(dict(settings, _config=config_path), indent=2, sort_keys=True) + "\n")
            return runner.EXIT_OK
        switch_user(settings["user"])
    except ConfigError as exc:
        reporter.error("configuration error: %s" % exc)
        return runner.EXIT_USAGE
    if args.notify_failure:
        return run_notify(settings, last_status(settings), args.unit, reporter)
    signal.signal(signal.SIGTERM, runner.on_signal)
    signal.signal(signal.SIGINT, runner.on_signal)
    try:
        if args.drill:
            return drill.run(settings, config_path, reporter)
        return runner.run(settings, config_path, reporter)
    except ConfigError as exc:
        reporter.error("configuration error: %s" % exc)
        return runner.EXIT_USAGE
