# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled job's settings: their names, defaults and validation, and where they are read.

Every setting that is also an option of the backup or prune module (format, compression, jobs,
name_template, the keep_* rules, ...) takes its type, choices, default and lower bound from
module_utils/backup/options.py, the table the modules' argument_spec is built from; only the
job's own settings (lock, metrics, notification, user, ...) are written here. The effective
settings are the defaults, then the configuration file (JSON, written by the role
lift_simulator.postgresql.scheduled_backup), then the command-line options. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.backup.options import OPTIONS

PROG = "lift-pg-backup"
CONFIG_DIR = "/etc/lift-pg-backup"
DEFAULT_NAME = "lift_simulator"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class ConfigError(Exception):
    """A setting or an option is wrong; the message says which and why."""


class Setting(object):
    """One setting. ``kind``: str, path (absolute), int, bool, list (of strings) or argv (a list of
    strings: a command);
    ``nullable``: null (or an empty string) allowed; ``option``: the backup or prune module's
    option it is (backup_options.OPTIONS), None for the job's own."""

    def __init__(self, key, kind, default, text, choices=None, nullable=False, minimum=0, option=None):
        self.key = key
        self.kind = kind
        self.default = default
        self.text = text
        self.choices = choices
        self.nullable = nullable
        self.minimum = minimum
        self.option = option


def own(key, kind, default, text, nullable=False, minimum=0):
    """A setting of the job alone."""
    return Setting(key, kind, default, text, nullable=nullable or default is None, minimum=minimum)


def shared(key, text, option=None, nullable=False):
    """A setting that is the module option ``option`` (default: the same name)."""
    option = option or key
    entry = OPTIONS[option]
    return Setting(key, entry.kind, entry.default, text, choices=entry.choices,
                   nullable=nullable or entry.default is None,
                   minimum=entry.minimum if entry.minimum is not None else 0, option=option)


SETTINGS = (
    own("name", "str", None, "job name: config, lock, status and metrics file names (default: the database)"),
    own("user", "str", None, "OS user the job runs as; started as root, the command switches to it"),
    shared("database", "database to back up"),
    own("dest_dir", "path", "/var/backups/lift_simulator", "backup directory"),
    shared("log_dir", "one log file per run (default: <dest_dir>/logs)"),
    shared("format", "pg_dump format"),
    shared("compression", "compression (default: none for plain, gzip for archives)"),
    shared("compression_level", "compression level"),
    shared("jobs", "parallel pg_dump jobs (format directory only; default: the number of cores)"),
    shared("name_template", "backup name (strftime, {database}, {host})"),
    shared("timezone", "time zone of the time in the backup name", option="name_timezone"),
    shared("bin_dir", "directory of pg_dump and pg_restore (default: the newest installed)"),
    shared("check_free_space", "refuse to start when the estimated dump does not fit"),
    shared("lock_wait_timeout", "pg_dump --lock-wait-timeout (null: wait without limit)", nullable=True),
    shared("stall_timeout", "seconds the dump may make no progress before it is stopped (0: never)"),
    shared("directory_checks",
           "refuse (strict) or only warn about a dest_dir or log_dir that another local user could change"),
    shared("app_schema", "the application's schema (manifest checklist)"),
    shared("role_definitions", "write the cluster's role definitions beside each backup (<backup>.globals.sql)"),
    shared("role_passwords", "keep the roles' password verifiers in them (needs a superuser login)"),
    shared("encryption", "encrypt each backup in its stream (age; docs/encryption.md)"),
    shared("encryption_recipients", "public keys to encrypt to (age1..., ssh-ed25519 ...) or files listing them"),
    shared("manifest_detail", "full, or minimal: no row counts, Flyway history or checklist in the manifest"),
    own("login_host", "str", None, "server host for TCP (default: the local socket)"),
    shared("login_port", "server port"),
    own("login_user", "str", None, "login role (default: the OS user's name, e.g. postgres with peer auth)"),
    own("login_unix_socket", "path", None, "socket directory (default: libpq's)"),
    own("password_file", "path", None, "file with the login password (0600, first line); "
                                       "without it peer auth or ~/.pgpass is used"),
    shared("ssl_mode", "libpq sslmode"),
    own("ca_cert", "path", None, "CA certificate for verify-ca/verify-full"),
    shared("connect_timeout", "connection timeout in seconds"),
    own("offsite_targets_file", "path", None, "JSON list of off-site targets (the offsite module's target settings "
                                              "and a name; 0600, the job user's own: it holds credentials); each "
                                              "verified backup is copied to every one"),
    # Restore drills (--drill; job/drill.py).
    own("drill_owner", "str", "lift_admin", "--drill: the role that owns the restored objects in the scratch "
                                            "database (it must exist)"),
    own("drill_local_login", "bool", True, "--drill: connect over the local socket as the OS user (peer "
                                           "authentication: postgres is a superuser, as restores need) instead of "
                                           "with the backup's login"),
    own("drill_offsite", "bool", True, "--drill: also drill from the newest copy on each off-site target"),
    own("drill_pull_dir", "path", None, "--drill: where a private directory for the pulled copy is made (removed "
                                        "afterwards; default /var/tmp)"),
    own("drill_identity_file", "path", None, "--drill: age identity that decrypts encrypted backups"),
    own("drill_pitr_stanza", "str", None, "--drill: also recover this pgBackRest stanza's latest into a scratch data "
                                          "directory under state_dir and check it there (null: no PITR drill)"),
    own("drill_pitr_config", "path", None, "--drill: pgBackRest configuration file of the PITR drill (null: "
                                           "pgBackRest's default, /etc/pgbackrest/pgbackrest.conf)"),
    own("retention", "bool", True, "apply the retention rules after a verified backup"),
    shared("keep_last", "always keep this many newest good backups"),
    shared("keep_daily", "keep the newest good backup of each of the last N days"),
    shared("keep_weekly", "keep the newest good backup of each of the last N ISO weeks"),
    shared("keep_monthly", "keep the newest good backup of each of the last N months"),
    shared("max_age_days", "remove good backups older than this (keep_last wins)"),
    shared("include_legacy", "also prune the earlier processes' backups"),
    shared("verify_checksums", "retention hashes every backup against its manifest"),
    shared("retention_timezone", "day/week/month boundaries of the calendar rules", option="calendar_timezone"),
    shared("legacy_timezone", "time zone of the earlier processes' backup names"),
    own("metrics_dir", "path", "/var/lib/prometheus/node-exporter",
        "node_exporter textfile directory (empty or null: no metrics)", nullable=True),
    own("state_dir", "path", "/var/lib/lift-pg-backup", "lock file and last-run status"),
    own("status_page_dir", "path", None, "write the status page (index.html, 0644) here after every run and drill "
                                         "(null: no page; report/status_page.py)"),
    own("lock_file", "path", None, "lock file (default: <state_dir>/<name>.lock)"),
    own("wait", "bool", False, "wait for a running backup instead of exiting"),
    own("wait_timeout", "int", None, "with wait: give up after this many seconds"),
    own("notify_command", "argv", [], "command run when a run fails (argv list; {log} {unit} {name} {database} "
                                      "{host} {status} {message} are replaced)"),
    own("notify_on_failure", "bool", False, "run notify_command itself after a failed run (cron)"),
    own("notify_timeout", "int", 120, "seconds each notifier (command, mail, webhook) may take", minimum=1),
    own("notify_mail_to", "list", [], "mail a failure to these addresses (through notify_mail_command)"),
    own("notify_mail_from", "str", None, "From address of the failure mail (default: <user>@<host>)"),
    own("notify_mail_command", "argv", ["/usr/sbin/sendmail", "-t", "-i"],
        "sendmail-compatible command the failure mail goes to (on stdin; recipients in its header)"),
    own("notify_webhook_url", "str", None, "POST a failure as JSON to this http(s) URL"),
    own("notify_webhook_token_file", "path", None, "file with the webhook's bearer token (0600, the job user's)"),
    own("notify_webhook_retries", "int", 2, "further webhook attempts after a network error or a 5xx/429 answer"),
    # Thresholds of the alert rules (job/alerts.py; the role writes the same into the rules file).
    own("alert_backup_max_age_seconds", "int", 8 * 86400, "alert when the last good backup is older (status page)",
        minimum=1),
    own("alert_drill_max_age_seconds", "int", 93 * 86400, "alert when the last good restore drill is older",
        minimum=1),
    own("alert_offsite_max_age_seconds", "int", 8 * 86400, "alert when the newest off-site copy is older",
        minimum=1),
    own("alert_pitr_archive_lag_seconds", "int", 3600, "alert when the newest archived WAL segment is older",
        minimum=1),
    own("alert_pitr_backup_max_age_seconds", "int", 2 * 86400, "alert when the newest pgBackRest backup is older",
        minimum=1),
)
SETTING_TYPES = dict((setting.key, setting) for setting in SETTINGS)
SETTING_DEFAULTS = dict((setting.key, setting.default) for setting in SETTINGS)

# The command-line option of each setting (cli.py adds --config, --progress, --print-config,
# --notify-failure, --unit, --version).
OPTION_NAMES = dict((key, "--" + key.replace("_", "-")) for key in SETTING_TYPES)
OPTION_NAMES["compression_level"] = "--level"


def check_value(setting, value):
    """The value converted to the setting's type; ConfigError when it is not valid."""
    key, kind = setting.key, setting.kind
    if value is None or (setting.nullable and setting.choices is None and value == ""):
        if setting.nullable:
            return None
        raise ConfigError("%s must be set" % key)
    if setting.choices is not None:
        if value not in setting.choices:
            raise ConfigError("%s must be one of %s (got %r)" % (key, ", ".join(setting.choices), value))
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError("%s must be true or false (got %r)" % (key, value))
    if kind == "int":
        return _whole_number(key, value, setting.minimum)
    if kind in ("argv", "list"):
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            what = " (an argv list, no shell)" if kind == "argv" else ""
            raise ConfigError("%s must be a list of strings%s" % (key, what))
        return list(value)
    if not isinstance(value, str):
        raise ConfigError("%s must be a string (got %r)" % (key, value))
    if kind == "path" and not os.path.isabs(value):
        raise ConfigError("%s must be an absolute path (got %r)" % (key, value))
    if "\n" in value or "\0" in value:
        raise ConfigError("%s must be one line" % key)
    return value


def _whole_number(key, value, minimum):
    if isinstance(value, bool):
        raise ConfigError("%s must be a whole number (got %r)" % (key, value))
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError("%s must be a whole number (got %r)" % (key, value))
    if isinstance(value, float) and value != number:
        raise ConfigError("%s must be a whole number (got %r)" % (key, value))
    if number < minimum:
        raise ConfigError("%s must be %d or more (got %r)" % (key, minimum, value))
    return number


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
    for setting in SETTINGS:
        settings[setting.key] = check_value(setting, merged.get(setting.key))
    settings["name"] = settings["name"] or job_name_for(settings["database"])
    if not NAME_RE.match(settings["name"]):
        raise ConfigError("name must be letters, digits, '_' and '-' (it names files and units): %r"
                          % settings["name"])
    settings["log_dir"] = settings["log_dir"] or os.path.join(settings["dest_dir"], "logs")
    settings["lock_file"] = settings["lock_file"] or os.path.join(settings["state_dir"], "%s.lock" % settings["name"])
    if settings["login_host"] and settings["login_unix_socket"]:
        raise ConfigError("login_host and login_unix_socket are mutually exclusive")
    if (settings["jobs"] or 1) > 1 and settings["format"] != "directory":
        raise ConfigError("jobs > 1 needs format directory")
    if settings["wait_timeout"] is not None and not settings["wait"]:
        settings["wait"] = True
    return settings, config_path


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


def status_path(settings):
    """The last run's outcome, for the OnFailure notification."""
    return os.path.join(settings["state_dir"], "%s.last-run.json" % settings["name"])


def metrics_path(settings):
    """The Prometheus textfile, or None when metrics are off."""
    if not settings["metrics_dir"]:
        return None
    return os.path.join(settings["metrics_dir"], "lift_pg_backup_%s.prom" % settings["name"])
