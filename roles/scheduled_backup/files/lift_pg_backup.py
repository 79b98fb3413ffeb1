# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lift-pg-backup: the scheduled backup job of lift_simulator.postgresql.

One run: take a backup with the collection's own backup code (module_utils/backup_run.py, the
code behind the ``backup`` module), verify what it wrote (backup_files.quick_checks), apply the
retention rules (module_utils/retention_apply.py, the code behind the ``prune`` module), and
record the outcome: one log file per run, the Prometheus textfile metrics, and a status file for
the failure notification. Overlapping runs are prevented by a lock.

Needs Python 3 and psycopg2 (Debian: python3-psycopg2) and the collection's pure module_utils,
which the role lift_simulator.postgresql.scheduled_backup copies to
/usr/local/lib/lift-pg-backup (LIFT_PG_BACKUP_LIB overrides that). Ansible is not needed.
The role installs this file as /usr/local/sbin/lift-pg-backup with the interpreter line
"#!/usr/bin/python3 -I" in front (the source has none, as ansible-test wants of role files).
"""

import argparse
import datetime
import errno
import fcntl
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import time
import traceback

LIB_DIR = os.environ.get("LIFT_PG_BACKUP_LIB", "/usr/local/lib/lift-pg-backup")
if os.path.isdir(LIB_DIR) and LIB_DIR not in sys.path:
    sys.path.insert(0, LIB_DIR)

try:
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils import atomic_files
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils import backup_files
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils import backup_run
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils import codecs
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils import naming
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils import pg_connection
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils import retention
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils import retention_apply
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.run_log import RunLog
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.units import human_bytes
    from ansible_collections.lift_simulator.postgresql.plugins.module_utils.version import COLLECTION_VERSION
    FORMATS, COMPRESSIONS = naming.FORMATS, codecs.NAMES
    LIBRARY_ERROR = None
except ImportError as exc:  # reported by main(): the rest of this file stays importable
    FORMATS, COMPRESSIONS = (), ()
    LIBRARY_ERROR = exc
    RunLog = object
    COLLECTION_VERSION = "unknown"

PROG = "lift-pg-backup"
CONFIG_DIR = "/etc/lift-pg-backup"
DEFAULT_NAME = "lift_simulator"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock

METRIC_PREFIX = "lift_simulator_backup_"
METRICS = (
    ("last_run_success", "1 if the last backup run succeeded (backup, verification, retention), 0 if it failed."),
    ("last_run_timestamp_seconds", "Unix time at which the last backup run ended, success or failure."),
    ("last_duration_seconds", "Duration in seconds of the last backup run, success or failure."),
    ("last_success_timestamp_seconds", "Unix time at which the last verified backup was completed (0: none yet)."),
    ("last_size_bytes", "Size in bytes of the last verified backup (0: none yet)."),
    ("future_dated_backups", "Backups dated after the time of the last run (a clock was wrong): alert when above 0."),
)

# key: (type, default, help). Types: str, path (absolute), int (>= 0), posint (>= 1), bool,
# argv (list of strings), or a tuple of choices. "?" after a type: null allowed.
SETTINGS = (
    ("name", "str?", None, "job name: config, lock, status and metrics file names (default: the database)"),
    ("user", "str?", None, "OS user the job runs as; started as root, the command switches to it"),
    ("database", "str", "lift_simulator", "database to back up"),
    ("dest_dir", "path", "/var/backups/lift_simulator", "backup directory"),
    ("log_dir", "path?", None, "one log file per run (default: <dest_dir>/logs)"),
    ("format", FORMATS, "plain", "pg_dump format"),
    ("compression", COMPRESSIONS + (None,), None,
     "compression (default: none for plain, gzip for archives)"),
    ("compression_level", "int?", None, "compression level"),
    ("jobs", "posint", 1, "parallel pg_dump jobs (format directory only)"),
    ("name_template", "str", "{database}_backup_%Y%m%d_%H%M%S", "backup name (strftime, {database}, {host})"),
    ("timezone", ("utc", "local"), "utc", "time zone of the time in the backup name"),
    ("bin_dir", "path?", None, "directory of pg_dump and pg_restore (default: the newest installed)"),
    ("check_free_space", "bool", True, "refuse to start when the estimated dump does not fit"),
    ("lock_wait_timeout", "str?", "120s", "pg_dump --lock-wait-timeout (null: wait without limit)"),
    ("stall_timeout", "int", 300, "seconds the dump may make no progress before it is stopped (0: never)"),
    ("directory_checks", ("strict", "warn"), "strict",
     "refuse (strict) or only warn about a dest_dir or log_dir that another local user could change"),
    ("app_schema", "str", "lift_simulator", "the application's schema (manifest checklist)"),
    ("role_definitions", "bool", True, "write the cluster's role definitions beside each backup (<backup>.globals.sql)"),
    ("role_passwords", "bool", False, "keep the roles' password verifiers in them (needs a superuser login)"),
    ("login_host", "str?", None, "server host for TCP (default: the local socket)"),
    ("login_port", "posint", 5432, "server port"),
    ("login_user", "str?", None, "login role (default: the OS user's name, e.g. postgres with peer auth)"),
    ("login_unix_socket", "path?", None, "socket directory (default: libpq's)"),
    ("password_file", "path?", None, "file with the login password (0600, first line); "
                                     "without it peer auth or ~/.pgpass is used"),
    ("ssl_mode", ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"), "prefer", "libpq sslmode"),
    ("ca_cert", "path?", None, "CA certificate for verify-ca/verify-full"),
    ("connect_timeout", "posint", 10, "connection timeout in seconds"),
    ("retention", "bool", True, "apply the retention rules after a verified backup"),
    ("keep_last", "int", 4, "always keep this many newest good backups"),
    ("keep_daily", "int?", None, "keep the newest good backup of each of the last N days"),
    ("keep_weekly", "int?", None, "keep the newest good backup of each of the last N ISO weeks"),
    ("keep_monthly", "int?", None, "keep the newest good backup of each of the last N months"),
    ("max_age_days", "int?", None, "remove good backups older than this (keep_last wins)"),
    ("include_legacy", "bool", False, "also prune the earlier processes' backups"),
    ("verify_checksums", "bool", True, "retention hashes every backup against its manifest"),
    ("retention_timezone", ("utc", "local"), "utc", "day/week/month boundaries of the calendar rules"),
    ("legacy_timezone", ("local", "utc"), "local", "time zone of the earlier processes' backup names"),
    ("metrics_dir", "path?", "/var/lib/prometheus/node-exporter",
     "node_exporter textfile directory (empty or null: no metrics)"),
    ("state_dir", "path", "/var/lib/lift-pg-backup", "lock file and last-run status"),
    ("lock_file", "path?", None, "lock file (default: <state_dir>/<name>.lock)"),
    ("wait", "bool", False, "wait for a running backup instead of exiting"),
    ("wait_timeout", "int?", None, "with wait: give up after this many seconds"),
    ("notify_command", "argv", [], "command run when a run fails (argv list; {log} {unit} {name} {database} "
                                   "{host} {status} {message} are replaced)"),
    ("notify_on_failure", "bool", False, "run notify_command itself after a failed run (cron)"),
    ("notify_timeout", "posint", 120, "seconds the notification command may take"),
)
SETTING_TYPES = dict((key, kind) for key, kind, _default, _help in SETTINGS)
SETTING_DEFAULTS = dict((key, default) for key, _kind, default, _help in SETTINGS)

# Command-line options (besides the settings): --config, --progress, --print-config,
# --notify-failure, --unit, --version.
_OPTION_NAMES = dict((key, "--" + key.replace("_", "-")) for key in SETTING_TYPES)
_OPTION_NAMES["compression_level"] = "--level"


class ConfigError(Exception):
    """A setting or an option is wrong; the message says which and why."""


class Terminated(backup_run.BackupError if LIBRARY_ERROR is None else Exception):
    """The job got SIGTERM or SIGINT (time limit reached, unit stopped, Ctrl-C). A BackupError, so
    that run_backup records it in the run's log like any other failure."""

    def __init__(self, message):
        Exception.__init__(self, message)
        self.stderr = ""
        self.log_path = None


# --- settings ---------------------------------------------------------------------------------

def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Take a backup of a PostgreSQL database with the code of lift_simulator.postgresql's backup\n"
            "module, verify it (checksum, manifest, pg_dump trailer or archive table of contents), apply\n"
            "the retention rules (the prune module's code; never after a failed backup or verification),\n"
            "and record the run: a log file in the logs directory, Prometheus textfile metrics, a status\n"
            "file for the failure notification. Overlapping runs are prevented by a lock.\n\n"
            "Settings come from the configuration file (JSON, written by the role\n"
            "lift_simulator.postgresql.scheduled_backup); the options below override it. In a terminal\n"
            "the command shows the progress and a summary; otherwise (systemd, cron) it prints plain\n"
            "log lines."),
        epilog=(
            "files:\n"
            "  /etc/lift-pg-backup/<name>.json          configuration (default name: lift_simulator)\n"
            "  <state_dir>/<name>.lock                  lock (flock) held while a run is going on\n"
            "  <state_dir>/<name>.last-run.json         outcome of the last run (for --notify-failure)\n"
            "  <metrics_dir>/lift_pg_backup_<name>.prom node_exporter textfile metrics\n"
            "  <log_dir>/<backup name>.log              one log per run\n\n"
            "exit status:\n"
            "  0 success, 1 the run failed (the log says why), 2 usage or configuration error,\n"
            "  75 another backup is running (without --wait)\n\n"
            "examples:\n"
            "  sudo lift-pg-backup                        run the configured job now (switches to its user)\n"
            "  sudo lift-pg-backup --wait                 wait for a running backup first\n"
            "  lift-pg-backup --print-config              show the effective settings\n"
            "  lift-pg-backup --config /etc/lift-pg-backup/lift_simulator.json --no-retention"),
    )
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="configuration file (default: %s/<name>.json when it exists)" % CONFIG_DIR)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="live progress and a summary (default: when stderr is a terminal)")
    parser.add_argument("--print-config", action="store_true", help="print the effective settings (JSON) and exit")
    parser.add_argument("--notify-failure", action="store_true",
                        help="only run notify_command about the last run (used by the systemd OnFailure unit)")
    parser.add_argument("--unit", default="", help="with --notify-failure: the unit that failed")
    parser.add_argument("--version", action="version", version="%s (lift_simulator.postgresql %s)"
                        % (PROG, COLLECTION_VERSION))
    group = parser.add_argument_group("settings (override the configuration file)")
    for key, kind, _default, text in SETTINGS:
        option = _OPTION_NAMES[key]
        if kind == "bool":
            group.add_argument(option, dest=key, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif kind == "argv":
            group.add_argument(option, dest=key, metavar="JSON", type=_json_list, default=None,
                               help=text + " (a JSON list)")
        elif isinstance(kind, tuple):
            group.add_argument(option, dest=key, default=None, choices=[c for c in kind if c is not None],
                               help=text)
        else:
            metavar = {"path": "PATH", "int": "N", "posint": "N"}.get(kind.rstrip("?"), "TEXT")
            group.add_argument(option, dest=key, default=None, metavar=metavar, help=text)
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


def _check_value(key, kind, value):
    """The value converted to its type; ConfigError when it is not valid."""
    optional = isinstance(kind, str) and kind.endswith("?")
    base = kind[:-1] if optional else kind
    if value is None or (optional and value == ""):
        if optional or (isinstance(kind, tuple) and None in kind):
            return None
        raise ConfigError("%s must be set" % key)
    if isinstance(kind, tuple):
        if value not in kind:
            raise ConfigError("%s must be one of %s (got %r)" % (key, ", ".join(c for c in kind if c), value))
        return value
    if base == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError("%s must be true or false (got %r)" % (key, value))
    if base in ("int", "posint"):
        if isinstance(value, bool):
            raise ConfigError("%s must be a whole number (got %r)" % (key, value))
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError("%s must be a whole number (got %r)" % (key, value))
        if isinstance(value, float) and value != number:
            raise ConfigError("%s must be a whole number (got %r)" % (key, value))
        if number < (1 if base == "posint" else 0):
            raise ConfigError("%s must be %s (got %r)" % (key, "1 or more" if base == "posint" else "0 or more", value))
        return number
    if base == "argv":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError("%s must be a list of strings (an argv list, no shell)" % key)
        return list(value)
    if not isinstance(value, str):
        raise ConfigError("%s must be a string (got %r)" % (key, value))
    if base == "path" and not os.path.isabs(value):
        raise ConfigError("%s must be an absolute path (got %r)" % (key, value))
    if "\n" in value or "\0" in value:
        raise ConfigError("%s must be one line" % key)
    return value


def job_name_for(database):
    """The default job name: the database name with anything but letters, digits, '_', '-' as '_'."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", database).lstrip("_-") or "database"


def default_config_path(name):
    return os.path.join(CONFIG_DIR, "%s.json" % (name or DEFAULT_NAME))


def read_config(path):
    """The settings of a configuration file (a JSON object; keys starting with '_' are comments)."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except OSError as exc:
        raise ConfigError("cannot read the configuration %s: %s" % (path, exc.strerror))
    except ValueError as exc:
        raise ConfigError("the configuration %s is not valid JSON: %s" % (path, exc))
    if not isinstance(data, dict):
        raise ConfigError("the configuration %s must be a JSON object" % path)
    return data


def load_settings(args, read=read_config, exists=os.path.exists):
    """The effective settings: defaults, then the configuration file, then the options.

    Returns (settings, config_path or None). Raises ConfigError.
    """
    cli = dict((key, getattr(args, key)) for key in SETTING_TYPES if getattr(args, key, None) is not None)
    config_path = args.config
    if config_path is None:
        candidate = default_config_path(cli.get("name"))
        config_path = candidate if exists(candidate) else None
    config = dict((k, v) for k, v in (read(config_path) if config_path else {}).items() if not k.startswith("_"))
    unknown = sorted(set(config) - set(SETTING_TYPES))
    if unknown:
        raise ConfigError("unknown setting%s in %s: %s" % ("s" if len(unknown) > 1 else "", config_path,
                                                           ", ".join(unknown)))
    merged = dict(SETTING_DEFAULTS)
    merged.update(config)
    merged.update(cli)
    settings = {}
    for key, kind, _default, _help in SETTINGS:
        settings[key] = _check_value(key, kind, merged.get(key))
    settings["name"] = settings["name"] or job_name_for(settings["database"])
    if not NAME_RE.match(settings["name"]):
        raise ConfigError("name must be letters, digits, '_' and '-' (it names files and units): %r"
                          % settings["name"])
    settings["log_dir"] = settings["log_dir"] or os.path.join(settings["dest_dir"], "logs")
    settings["lock_file"] = settings["lock_file"] or os.path.join(settings["state_dir"], "%s.lock" % settings["name"])
    if settings["login_host"] and settings["login_unix_socket"]:
        raise ConfigError("login_host and login_unix_socket are mutually exclusive")
    if settings["jobs"] > 1 and settings["format"] != "directory":
        raise ConfigError("jobs > 1 needs format directory")
    if settings["wait_timeout"] is not None and not settings["wait"]:
        settings["wait"] = True
    return settings, config_path


def status_path(settings):
    return os.path.join(settings["state_dir"], "%s.last-run.json" % settings["name"])


def metrics_path(settings):
    if not settings["metrics_dir"]:
        return None
    return os.path.join(settings["metrics_dir"], "lift_pg_backup_%s.prom" % settings["name"])


# --- presentation -----------------------------------------------------------------------------

def format_duration(seconds):
    """7.3 s, 1:05, 1:02:03."""
    if seconds < 60:
        return "%.1f s" % seconds
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return "%d:%02d:%02d" % (hours, minutes, secs) if hours else "%d:%02d" % (minutes, secs)


def format_progress(size, elapsed):
    """The live progress line: bytes written, average rate, elapsed time."""
    rate = size / elapsed if elapsed > 0 else 0.0
    return "dumping: %s written, %s/s, %s elapsed" % (human_bytes(size), human_bytes(rate), format_duration(elapsed))


def lock_message(path, holder):
    """What a run says when another one holds the lock. ``holder`` is dict(pid, started) or None."""
    pid = holder.get("pid") if holder else None
    started = holder.get("started") if holder else None
    return ("another backup is running (pid %s)%s; this run did nothing (lock %s). Use --wait to wait for it."
            % (pid or "unknown", " since %s" % started if started else "", path))


class Reporter(object):
    """Terminal: live progress and a summary on stderr. Otherwise: the log lines on stdout."""

    def __init__(self, interactive, out=None, err=None):
        self.interactive = interactive
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._progress_shown = False

    def log_line(self, line):
        if not self.interactive:
            self.out.write(line + "\n")
            self.out.flush()

    def step(self, text):
        if self.interactive:
            self._clear_progress()
            self.err.write("%s: %s\n" % (PROG, text))
            self.err.flush()

    def progress(self, size, elapsed):
        if self.interactive:
            self.err.write("\r\033[K  " + format_progress(size, elapsed))
            self.err.flush()
            self._progress_shown = True

    def _clear_progress(self):
        if self._progress_shown:
            self.err.write("\n")
            self._progress_shown = False

    def error(self, text):
        self._clear_progress()
        self.err.write("%s: %s\n" % (PROG, text))
        self.err.flush()

    def summary(self, rows):
        if self.interactive:
            self._clear_progress()
            width = max(len(label) for label, _value in rows) if rows else 0
            for label, value in rows:
                self.err.write("  %s  %s\n" % (label.ljust(width), value))
            self.err.flush()


class JobLog(RunLog):
    """The run's log (module_utils/run_log.RunLog), echoed line by line through the reporter."""

    def __init__(self, scrub=None, reporter=None):
        RunLog.__init__(self, scrub=scrub)
        self.reporter = reporter

    def add(self, message):
        before = len(self.lines)
        RunLog.add(self, message)
        if self.reporter is not None:
            for line in self.lines[before:]:
                self.reporter.log_line(line)


# --- metrics ----------------------------------------------------------------------------------

_SAMPLE_RE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def escape_label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _unescape_label(value):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _labels_text(labels):
    return ",".join('%s="%s"' % (key, escape_label(value)) for key, value in labels)


def parse_metrics(text, labels):
    """{metric name: value} of the samples in ``text`` whose labels are exactly ``labels``."""
    wanted = dict(labels)
    values = {}
    for line in (text or "").splitlines():
        match = _SAMPLE_RE.match(line.strip())
        if not match or line.lstrip().startswith("#"):
            continue
        found = dict((k, _unescape_label(v)) for k, v in _LABEL_RE.findall(match.group(3) or ""))
        if found != wanted:
            continue
        try:
            values[match.group(1)] = float(match.group(4))
        except ValueError:
            continue
    return values


def _number(value):
    if float(value).is_integer():
        return "%d" % value
    return repr(float(value))


def render_metrics(labels, success, finished, duration, verified_size=None, previous_text="", future_dated=0):
    """The textfile of a run.

    ``labels`` is a list of (name, value); ``finished`` a Unix time; ``verified_size`` the size of
    the verified backup this run made (None when it made none: the last success and its size are
    carried over from ``previous_text``, the file the last run wrote).
    """
    previous = parse_metrics(previous_text, labels)
    if verified_size is not None:
        last_success, last_size = finished, verified_size
    else:
        last_success = previous.get(METRIC_PREFIX + "last_success_timestamp_seconds", 0)
        last_size = previous.get(METRIC_PREFIX + "last_size_bytes", 0)
    values = {
        "last_run_success": 1 if success else 0,
        "last_run_timestamp_seconds": round(finished, 3),
        "last_duration_seconds": round(duration, 3),
        "last_success_timestamp_seconds": round(last_success, 3),
        "last_size_bytes": int(last_size),
        "future_dated_backups": int(future_dated),
    }
    lines = []
    for name, text in METRICS:
        full = METRIC_PREFIX + name
        lines.append("# HELP %s %s" % (full, text))
        lines.append("# TYPE %s gauge" % full)
        lines.append("%s{%s} %s" % (full, _labels_text(labels), _number(values[name])))
    return "\n".join(lines) + "\n"


def metric_labels(settings):
    return [("database", settings["database"]), ("backup_job", settings["name"])]


def write_metrics(settings, success, finished, duration, verified_size, future_dated=0):
    path = metrics_path(settings)
    if path is None:
        return None
    previous = ""
    try:
        with open(path) as handle:
            previous = handle.read(1024 * 1024)
    except OSError:
        pass
    text = render_metrics(metric_labels(settings), success, finished, duration, verified_size, previous,
                          future_dated)
    # Readable by node_exporter; replaced atomically (a hidden temporary node_exporter ignores).
    return atomic_files.write_file_atomic(settings["metrics_dir"], os.path.basename(path), text, mode=0o644,
                                          replace=True)


# --- the lock ---------------------------------------------------------------------------------

class LockBusy(Exception):
    def __init__(self, path, holder):
        Exception.__init__(self, lock_message(path, holder))
        self.path = path
        self.holder = holder


class JobLock(object):
    """flock on a lock file; the holder writes its pid and start time into it."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def _open(self):
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            try:
                atomic_files.ensure_private_dir(directory)
            except OSError as exc:
                raise ConfigError("cannot create the lock directory %s: %s" % (directory, exc.strerror or exc))
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise ConfigError("cannot open the lock file %s: %s" % (self.path, exc.strerror))

    def holder(self, fd=None, patience=1.0):
        """The running holder's pid and start, as it wrote them (polled briefly: it writes them
        right after it got the lock)."""
        fd = self.fd if fd is None else fd
        deadline = time.monotonic() + patience
        while True:
            text = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
            if text or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        return dict(pid=text[0] if text else None, started=text[1] if len(text) > 1 else None)

    def acquire(self, wait=False, timeout=None, on_wait=None):
        """Take the lock; returns the seconds waited. Raises LockBusy (not waiting, or timed out)."""
        fd = self._open()
        started = time.monotonic()
        try:
            waiting = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                        raise
                if not wait or (timeout is not None and time.monotonic() - started >= timeout):
                    raise LockBusy(self.path, self.holder(fd))
                if not waiting:
                    waiting = True
                    if on_wait is not None:
                        on_wait(self.holder(fd))
                time.sleep(0.2)
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            os.ftruncate(fd, 0)
            os.pwrite(fd, ("%d %s\n" % (os.getpid(), stamp)).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return time.monotonic() - started

    def release(self):
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)  # no stale pid for the next reader
            except OSError:
                pass
            os.close(self.fd)  # releases the flock; the file stays (removing it would race)
            self.fd = None


# --- privileges -------------------------------------------------------------------------------

def switch_user(user):
    """Started as root with a job user: become that user (uid, gid, groups, HOME) for good."""
    if not user or os.geteuid() != 0 or user == "root":
        if user and os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != user:
            raise ConfigError("this job runs as the OS user %s: run it as %s (or as root, which switches to it)"
                              % (user, user))
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError("the job's OS user %s does not exist" % user)
    os.initgroups(user, entry.pw_gid)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)
    os.chdir(entry.pw_dir if os.path.isdir(entry.pw_dir) else "/")


def _on_signal(signum, _frame):
    # Later signals are ignored while the run records its failure; systemd or timeout(1) send
    # SIGKILL if that takes too long.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    name = signal.Signals(signum).name
    raise Terminated("stopped by %s (the time limit was reached, the unit was stopped, or Ctrl-C)" % name)


# --- one run ----------------------------------------------------------------------------------

def read_password(path):
    """The first line of a password file that only its owner can read."""
    try:
        st = os.stat(path)
        if st.st_mode & 0o077:
            raise ConfigError("the password file %s can be read by others (mode %04o): chmod 0600 it"
                              % (path, st.st_mode & 0o7777))
        with open(path) as handle:
            line = handle.readline().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError("cannot read the password file %s: %s" % (path, exc.strerror))
    if not line:
        raise ConfigError("the password file %s is empty" % path)
    return line


def connection_params(settings):
    password = read_password(settings["password_file"]) if settings["password_file"] else None
    return pg_connection.ConnectionParams(
        database=settings["database"], login_host=settings["login_host"], login_port=settings["login_port"],
        login_user=settings["login_user"], login_password=password,
        login_unix_socket=settings["login_unix_socket"], ssl_mode=settings["ssl_mode"],
        ca_cert=settings["ca_cert"], connect_timeout=settings["connect_timeout"])


def backup_request(settings, params):
    return backup_run.BackupRequest(
        connection=params, dest_dir=settings["dest_dir"], fmt=settings["format"],
        compression=settings["compression"], compression_level=settings["compression_level"],
        jobs=settings["jobs"], name_template=settings["name_template"], timezone=settings["timezone"],
        bin_dir=settings["bin_dir"], check_free_space=settings["check_free_space"],
        lock_wait_timeout=settings["lock_wait_timeout"], log_dir=settings["log_dir"],
        app_schema=settings["app_schema"], directory_checks=settings["directory_checks"],
        stall_timeout=settings["stall_timeout"], role_definitions=settings["role_definitions"],
        role_passwords=settings["role_passwords"])


def retention_rules(settings):
    return retention.Rules(keep_last=settings["keep_last"], keep_daily=settings["keep_daily"],
                           keep_weekly=settings["keep_weekly"], keep_monthly=settings["keep_monthly"],
                           max_age_days=settings["max_age_days"],
                           tz=datetime.timezone.utc if settings["retention_timezone"] == "utc" else None)


class Outcome(object):
    def __init__(self):
        self.stage = None      # where it failed: settings, backup, verification, retention, metrics
        self.message = None
        self.result = None     # run_backup's result
        self.checks = []
        self.verified = False
        self.pruned = None     # retention_apply.PruneOutcome
        self.log_path = None
        self.metrics_path = None

    @property
    def success(self):
        return self.stage is None

    def fail(self, stage, message):
        if self.stage is None:
            self.stage, self.message = stage, message
        else:
            self.message += "; then %s: %s" % (stage, message)


def wait_for_a_free_name(request):
    """Two runs in the same second would want the same name: wait for the next second."""
    for _attempt in range(3):
        name = backup_run.plan_name(request)[0]
        if not os.path.lexists(os.path.join(request.dest_dir, name)):
            return
        time.sleep(1.0 - (time.time() % 1.0) + 0.01)


def verify(result, settings, log):
    """The quick verification of the backup just written; returns (checks, problem or None)."""
    backup = backup_files.inspect(result["path"], settings["directory_checks"])
    pg_restore = None
    if backup.format != "plain":
        bin_dir = settings["bin_dir"] or os.path.dirname(result["pg_dump_path"])
        pg_restore = pg_connection.find_client_binary("pg_restore", bin_dir)[0]
    checks = backup_files.quick_checks(backup, pg_restore)
    for item in checks:
        log.add("verification: %s %s: %s" % (item["name"], "skipped" if item["skipped"] else
                                             "passed" if item["passed"] else "FAILED", item["detail"]))
    failed = ["%s: %s" % (c["name"], c["detail"]) for c in checks if not c["passed"]]
    if backup.manifest is None:
        failed.append("manifest: the backup has no manifest")
    return checks, ("; ".join(failed) if failed else None)


def apply_retention(settings, result, log):
    outcome = retention_apply.apply_retention(
        settings["dest_dir"], retention_rules(settings), database=settings["database"],
        include_legacy=settings["include_legacy"], verify_checksums=settings["verify_checksums"],
        legacy_tz=None if settings["legacy_timezone"] == "local" else datetime.timezone.utc,
        protect=[result["name"], os.path.basename(result["manifest_path"])],
        directory_checks=settings["directory_checks"])
    for warning in outcome.warnings:
        log.add("warning: %s" % warning)
    for candidate in outcome.plan.future_dated:
        log.add("retention: WARNING: %s is dated in the future (%s): a clock is wrong; it is kept and counts for "
                "nothing until its time has come" % (candidate.name, candidate.time.strftime("%Y-%m-%dT%H:%M:%SZ")))
    for decision in outcome.plan.kept:
        log.add("retention: kept %s (%s)" % (decision.name, decision.rule))
    for decision in outcome.removed:
        log.add("retention: removed %s (%s: %s)" % (decision.name, decision.rule, decision.reason))
    for item in outcome.left_alone():
        log.add("retention: left alone %s (%s)" % (item["path"], item["reason"]))
    if result["name"] not in [d.name for d in outcome.plan.kept]:
        log.add("retention: note: %s does not have a standard backup name (%s_backup_YYYYMMDD_HHMMSS): retention "
                "does not handle the backups of this name_template" % (result["name"], settings["database"]))
    return outcome


def run_job(settings, log, reporter):
    """Backup, verification, retention. Returns an Outcome (never raises for a failed run)."""
    outcome = Outcome()
    try:
        params = connection_params(settings)
    except ConfigError as exc:
        outcome.fail("settings", str(exc))
        return outcome
    log.scrub = params.scrub
    request = backup_request(settings, params)
    try:
        wait_for_a_free_name(request)
    except backup_run.BackupError:
        pass  # run_backup reports a bad name template itself
    reporter.step("backing up database %s to %s" % (settings["database"], settings["dest_dir"]))
    try:
        outcome.result = backup_run.run_backup(request, progress=reporter.progress, log=log)
        outcome.log_path = outcome.result.get("log_path")
    except backup_run.BackupError as exc:
        outcome.log_path = exc.log_path
        outcome.fail("backup", params.scrub(exc))
        return outcome
    if outcome.result.get("log_error"):
        log.add("warning: %s" % outcome.result["log_error"])
    try:
        _verify_and_prune(settings, log, reporter, outcome)
    except Terminated as exc:
        log.add("FAILED: %s" % exc)
        outcome.fail("terminated", str(exc))
    return outcome


def _verify_and_prune(settings, log, reporter, outcome):
    reporter.step("verifying %s" % outcome.result["path"])
    try:
        outcome.checks, problem = verify(outcome.result, settings, log)
    except (backup_files.BackupFileError, pg_connection.PgError) as exc:
        problem = str(exc)
    if problem:
        log.add("verification FAILED: %s; retention skipped" % problem)
        outcome.fail("verification", "the backup %s failed its verification: %s" % (outcome.result["path"], problem))
        return
    outcome.verified = True
    log.add("verification passed (%d checks)" % len(outcome.checks))

    if not settings["retention"]:
        log.add("retention: disabled")
        return
    reporter.step("applying the retention rules in %s" % settings["dest_dir"])
    try:
        outcome.pruned = apply_retention(settings, outcome.result, log)
    except (retention_apply.PruneError, retention.RetentionError) as exc:
        log.add("retention FAILED: %s" % exc)
        outcome.fail("retention", str(exc))
        return
    if outcome.pruned.errors:
        detail = "; ".join("%s: %s" % (e["path"], e["msg"]) for e in outcome.pruned.errors)
        log.add("retention FAILED: could not remove %s" % detail)
        outcome.fail("retention", "could not remove %d entries: %s" % (len(outcome.pruned.errors), detail))
    else:
        log.add("retention: %d kept, %d removed" % (len(outcome.pruned.plan.kept), len(outcome.pruned.removed)))


def other_stem(settings, kind):
    """Log name of a run that has no backup name: <name>_<kind>_YYYYMMDD_HHMMSS (UTC)."""
    return "%s_%s_%s" % (settings["name"], kind, datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d_%H%M%S"))


def write_log(settings, log, outcome, stem=None):
    """Write the run's log: replace the one run_backup wrote (the same file, now complete), or
    write one for a run that ended before run_backup wrote its log."""
    try:
        if outcome.log_path:
            return atomic_files.write_file_atomic(os.path.dirname(outcome.log_path), os.path.basename(outcome.log_path),
                                                  log.text(), replace=True)
        return log.write(settings["log_dir"], stem or other_stem(settings, "failed"))
    except OSError as exc:
        sys.stderr.write("%s: cannot write the run's log in %s: %s\n" % (PROG, settings["log_dir"], exc))
        return None


def write_status(settings, status):
    try:
        atomic_files.ensure_private_dir(settings["state_dir"])
        atomic_files.write_file_atomic(settings["state_dir"], os.path.basename(status_path(settings)),
                                       json.dumps(status, indent=2, sort_keys=True) + "\n", mode=0o640,
                                       replace=True)
    except OSError as exc:
        sys.stderr.write("%s: cannot write the status file %s: %s\n" % (PROG, status_path(settings), exc))


def utc_now_text():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the notification -------------------------------------------------------------------------

PLACEHOLDERS = ("log", "unit", "name", "database", "host", "status", "message")


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


def run_notify(settings, status, unit, reporter):
    """Run notify_command; returns 0 when it succeeded (or there is none), 1 otherwise.

    It runs as the job's user: main() has switched to that user already (the systemd
    notification unit starts the command as root)."""
    values = notify_values(settings, status, unit)
    if not settings["notify_command"]:
        reporter.error("backup job %s failed: %s (no notify_command configured)" % (settings["name"], values["message"]))
        return 0
    argv = substitute(settings["notify_command"], values)
    env = dict(os.environ)
    env.update(("LIFT_BACKUP_%s" % key.upper(), value) for key, value in values.items())
    try:
        code = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, timeout=settings["notify_timeout"],
                              check=False, cwd="/").returncode
    except (OSError, subprocess.SubprocessError) as exc:
        reporter.error("the notification command %s failed: %s" % (argv[0], exc))
        return 1
    if code != 0:
        reporter.error("the notification command %s exited with %d" % (argv[0], code))
        return 1
    return 0


def read_status(settings):
    try:
        with open(status_path(settings)) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


# --- main -------------------------------------------------------------------------------------

def summary_rows(settings, outcome, duration):
    rows = []
    result = outcome.result or {}
    if result.get("size_bytes") is not None:
        rows.append(("backup", result["path"]))
        rows.append(("size", "%s (%d bytes)" % (human_bytes(result["size_bytes"]), result["size_bytes"])))
        rows.append(("sha256", result["sha256"]))
        counts = result.get("row_counts") or {}
        rows.append(("rows", "%d in %d tables" % (sum(counts.values()), len(counts))))
    if outcome.checks:
        rows.append(("verification", ("passed: " if outcome.verified else "FAILED: ")
                     + ", ".join(c["name"] for c in outcome.checks)))
    if outcome.pruned is not None:
        removed = ", ".join(d.name for d in outcome.pruned.removed) or "nothing"
        rows.append(("retention", "%d kept; removed %s" % (len(outcome.pruned.plan.kept), removed)))
    if outcome.metrics_path:
        rows.append(("metrics", outcome.metrics_path))
    rows.append(("log", outcome.log_path or "(none)"))
    rows.append(("duration", format_duration(duration)))
    return rows


def run(settings, config_path, reporter):
    started_wall = time.time()
    started = time.monotonic()
    log = JobLog(reporter=reporter)
    log.add("%s %s: job %s (database %s) started as %s, pid %d, configuration %s"
            % (PROG, COLLECTION_VERSION, settings["name"], settings["database"],
               pwd.getpwuid(os.geteuid()).pw_name, os.getpid(), config_path or "none (defaults and options)"))
    lock = JobLock(settings["lock_file"])

    def on_wait(holder):
        running = lock_message(settings["lock_file"], holder).split(";")[0]
        log.add("waiting for the lock %s: %s" % (settings["lock_file"], running))
        reporter.step("another backup is running (pid %s): waiting for it" % (holder.get("pid") or "unknown"))

    try:
        waited = lock.acquire(settings["wait"], settings["wait_timeout"], on_wait)
    except (LockBusy, Terminated) as exc:
        message = str(exc)
        locked = isinstance(exc, LockBusy)
        log.add("%s: %s" % ("REFUSED" if locked else "FAILED while waiting for the lock", message))
        path = write_log(settings, log, Outcome(), other_stem(settings, "refused" if locked else "failed"))
        reporter.error(message)
        # For the notification of this failed start (the running job overwrites it when it ends).
        status = dict(status="refused" if locked else "failed", stage="lock", message=message, log_path=path,
                      backup_path=None, started_at=utc_now_text(), finished_at=utc_now_text(), pid=os.getpid())
        write_status(settings, status)
        if settings["notify_on_failure"]:
            run_notify(settings, status, "cron", reporter)
        return EXIT_LOCKED if locked else EXIT_FAILED
    try:
        log.add("lock %s acquired%s" % (settings["lock_file"], " after waiting %.1f s" % waited if waited >= 0.2 else ""))
        return _locked_run(settings, log, reporter, started, started_wall)
    finally:
        lock.release()


def _locked_run(settings, log, reporter, started, started_wall):
    try:
        outcome = run_job(settings, log, reporter)
    except Terminated as exc:  # after the backup (during it, run_backup reports it as a failed backup)
        outcome = Outcome()
        outcome.fail("terminated", str(exc))
        log.add("FAILED: %s" % exc)
    except Exception as exc:  # a bug or an unforeseen error: still record the failure
        outcome = Outcome()
        outcome.fail("internal", "unexpected error: %s: %s" % (type(exc).__name__, exc))
        log.add("FAILED: %s" % outcome.message)
        log.add(traceback.format_exc())
    # The outcome is known: record it whatever signal comes now (this takes a moment).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if outcome.stage == "settings":
        log.add("FAILED: %s" % outcome.message)
    duration = time.monotonic() - started
    finished = time.time()
    verified_size = outcome.result["size_bytes"] if outcome.verified else None
    try:
        future_dated = len(outcome.pruned.plan.future_dated) if outcome.pruned is not None else 0
        outcome.metrics_path = write_metrics(settings, outcome.success, finished, duration, verified_size,
                                             future_dated)
        if outcome.metrics_path:
            log.add("metrics written to %s" % outcome.metrics_path)
    except OSError as exc:
        log.add("metrics FAILED: cannot write %s: %s" % (metrics_path(settings), exc))
        outcome.fail("metrics", "cannot write the metrics %s: %s" % (metrics_path(settings), exc))
    if outcome.success:
        log.add("RESULT: success: %s verified%s, in %s" % (
            outcome.result["path"], "" if settings["retention"] else " (retention disabled)", format_duration(duration)))
    else:
        log.add("RESULT: FAILED (%s): %s" % (outcome.stage, outcome.message))
        if not outcome.verified:
            log.add("no retention was applied: every earlier backup is left in place")
    outcome.log_path = write_log(settings, log, outcome)
    status = dict(status="success" if outcome.success else "failed", stage=outcome.stage,
                  message=log.scrub(outcome.message) if outcome.message else None,
                  log_path=outcome.log_path, backup_path=(outcome.result or {}).get("path"),
                  started_at=datetime.datetime.fromtimestamp(started_wall, datetime.timezone.utc)
                  .strftime("%Y-%m-%dT%H:%M:%SZ"), finished_at=utc_now_text(), pid=os.getpid(),
                  duration_s=round(duration, 3))
    write_status(settings, status)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not inherited as ignored by the notification command
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if outcome.success:
        reporter.step("backup of %s succeeded" % settings["database"])
        reporter.summary(summary_rows(settings, outcome, duration))
        return EXIT_OK
    reporter.error("FAILED (%s): %s" % (outcome.stage, log.scrub(outcome.message)))
    if reporter.interactive:
        reporter.summary(summary_rows(settings, outcome, duration))
    else:
        reporter.error("log: %s" % (outcome.log_path or "(none)"))
    if settings["notify_on_failure"]:
        run_notify(settings, status, "cron", reporter)
    return EXIT_FAILED


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    interactive = args.progress if args.progress is not None else sys.stderr.isatty()
    reporter = Reporter(interactive)
    if LIBRARY_ERROR is not None:
        reporter.error("the collection's module_utils are missing or broken in %s (%s); run the role "
                       "lift_simulator.postgresql.scheduled_backup again, or set LIFT_PG_BACKUP_LIB"
                       % (LIB_DIR, LIBRARY_ERROR))
        return EXIT_USAGE
    try:
        settings, config_path = load_settings(args)
        if args.print_config:
            print(json.dumps(dict(settings, _config=config_path), indent=2, sort_keys=True))
            return EXIT_OK
        switch_user(settings["user"])
    except ConfigError as exc:
        reporter.error("configuration error: %s" % exc)
        return EXIT_USAGE
    if args.notify_failure:
        return run_notify(settings, read_status(settings), args.unit, reporter)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        return run(settings, config_path, reporter)
    except ConfigError as exc:
        reporter.error("configuration error: %s" % exc)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
