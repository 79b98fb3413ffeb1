# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Prometheus alert rules of the backups, evaluated in Python on the textfiles' samples (for
the status page: the alerts that would fire now). The rules themselves are
roles/scheduled_backup/templates/lift-pg-backup.rules.yml.j2; this evaluates the same expressions
with the same thresholds (the job's ``alert_*`` settings), without the rules' ``for:`` delays
(tests/integration/test_alert_rules.py proves both give the same alerts). Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job import metrics
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import SETTING_DEFAULTS

BACKUP = "lift_simulator_backup_"
PITR = "lift_simulator_pitr_"

# The thresholds (seconds) and the job's setting each comes from: alert_<key>.
THRESHOLD_KEYS = ("backup_max_age_seconds", "drill_max_age_seconds", "offsite_max_age_seconds",
                  "pitr_archive_lag_seconds", "pitr_backup_max_age_seconds")
DEFAULT_THRESHOLDS = dict((key, SETTING_DEFAULTS["alert_" + key]) for key in THRESHOLD_KEYS)
# Fixed: the PITR textfile is refreshed every 5 minutes (role pitr); an hour without is an outage.
PITR_METRICS_MAX_AGE_SECONDS = 3600

# name, severity, summary (a short title), template (the rule's summary annotation, rendered by
# render_summary), and how it is evaluated: metric, test, threshold (a key of the thresholds). Tests: "age" (now - value > threshold), "age_set" (the
# same, value above 0), "zero" (value == 0), "positive" (value > 0); "selector": the labels a
# sample must have (the rule's PromQL label matcher).
ALERTS = (
    dict(name="LiftBackupTooOld", template="{instance}: no good backup of database {database} (job {backup_job}){since}",
         severity="critical", summary="no good backup for longer than the schedule allows",
         metric=BACKUP + "last_success_timestamp_seconds", test="age", threshold="backup_max_age_seconds"),
    dict(name="LiftBackupLastRunFailed", template="{instance}: the last backup run of database {database} (job {backup_job}) failed",
         severity="warning", summary="the last backup run failed",
         metric=BACKUP + "last_run_success", test="zero"),
    dict(name="LiftBackupFutureDated", template="{instance}: {value} backups of database {database} (job {backup_job}) are dated in the future",
         severity="warning", summary="backups dated in the future (a clock is wrong)",
         metric=BACKUP + "future_dated_backups", test="positive"),
    dict(name="LiftOffsiteCopyMissing", template="{instance}: no copy of database {database} (job {backup_job}) on off-site target {target}",
         severity="critical", summary="no copy on an off-site target",
         metric=BACKUP + "offsite_newest_copy_timestamp_seconds", test="zero"),
    dict(name="LiftOffsiteCopyLagging", template="{instance}: the newest copy of database {database} (job {backup_job}) on off-site target "
         "{target} is {age} old",
         severity="warning", summary="the newest off-site copy is too old",
         metric=BACKUP + "offsite_newest_copy_timestamp_seconds", test="age_set", threshold="offsite_max_age_seconds"),
    dict(name="LiftOffsiteCopyFailed", template="{instance}: the last copy of database {database} (job {backup_job}) to off-site target {target} failed",
         severity="warning", summary="the last copy to an off-site target failed",
         metric=BACKUP + "offsite_last_run_success", test="zero"),
    dict(name="LiftRestoreDrillFailed", template="{instance}: the last restore drill of database {database} (job {backup_job}) from {source} failed",
         severity="critical", summary="the last restore drill failed",
         metric=BACKUP + "restore_drill_success", test="zero"),
    dict(name="LiftRestoreDrillOverdue", template="{instance}: no successful restore drill of database {database} (job {backup_job}) from {source} for {age}",
         severity="warning", summary="no successful restore drill for too long",
         metric=BACKUP + "restore_drill_last_success_timestamp_seconds", test="age_set",
         threshold="drill_max_age_seconds"),
    dict(name="LiftPitrBackupTooOld", template="{instance}: no pgBackRest backup of stanza {stanza}{since}",
         severity="critical", summary="no point-in-time recovery backup for too long",
         metric=PITR + "newest_backup_timestamp_seconds", test="age", threshold="pitr_backup_max_age_seconds",
         selector=(("type", "any"),)),
    dict(name="LiftPitrBackupFailed", template="{instance}: the last scheduled {type} pgBackRest backup of stanza {stanza} failed",
         severity="warning", summary="the last scheduled pgBackRest backup failed",
         metric=PITR + "last_run_success", test="zero"),
    dict(name="LiftPitrArchiveLagging", template="{instance}: no WAL of stanza {stanza} archived for {age}",
         severity="critical", summary="no WAL archived for too long",
         metric=PITR + "archive_newest_wal_timestamp_seconds", test="age_set", threshold="pitr_archive_lag_seconds"),
    dict(name="LiftPitrArchiveGaps", template="{instance}: {value} gaps in the WAL archive of stanza {stanza}",
         severity="critical", summary="WAL segments missing from the archive",
         metric=PITR + "archive_gaps", test="positive"),
    dict(name="LiftPitrRepositoryUnreadable", template="{instance}: the pgBackRest repository of stanza {stanza} cannot be read",
         severity="critical", summary="the pgBackRest repository cannot be read",
         metric=PITR + "info_success", test="zero"),
    dict(name="LiftPitrMetricsStale", template="{instance}: the PITR metrics of stanza {stanza} were last refreshed {age} ago",
         severity="warning", summary="the PITR metrics are not refreshed",
         metric=PITR + "info_timestamp_seconds", test="age", threshold=None),
    dict(name="LiftPitrFutureDated", template="{instance}: {value} pgBackRest backups or WAL of stanza {stanza} are dated in the future",
         severity="warning", summary="PITR backups or WAL dated in the future",
         metric=PITR + "future_dated", test="positive"),
)


def thresholds_from_settings(settings):
    """The thresholds of a job's settings (its ``alert_*`` keys; the defaults for those missing)."""
    return dict((key, float(settings.get("alert_" + key) or DEFAULT_THRESHOLDS[key])) for key in THRESHOLD_KEYS)


def parse_textfiles(texts):
    """{(metric name, frozenset of (label, value))}: value} of the samples in the textfiles
    ``texts`` (strings, node_exporter's format); comments, and lines that are no sample, are skipped."""
    samples = {}
    for text in texts:
        for line in (text or "").splitlines():
            line = line.strip()
            match = metrics._SAMPLE_RE.match(line)
            if not match or line.startswith("#"):
                continue
            labels = dict((k, metrics._unescape_label(v)) for k, v in metrics._LABEL_RE.findall(match.group(3) or ""))
            try:
                value = float(match.group(4))
            except ValueError:
                continue
            samples[(match.group(1), frozenset(labels.items()))] = value
    return samples


def humanize_duration(seconds):
    """A duration as Prometheus's template function humanizeDuration writes it ("9d 0h 0m 0s")."""
    sign = "-" if seconds < 0 else ""
    value = abs(seconds)
    if value < 1:
        return "%s%.4gs" % (sign, value)
    whole = int(value)
    days, hours, minutes, secs = whole // 86400, whole // 3600 % 24, whole // 60 % 60, whole % 60
    if days:
        return "%s%dd %dh %dm %ds" % (sign, days, hours, minutes, secs)
    if hours:
        return "%s%dh %dm %ds" % (sign, hours, minutes, secs)
    if minutes:
        return "%s%dm %ds" % (sign, minutes, secs)
    return "%s%.4gs" % (sign, value)


def _threshold(alert, thresholds):
    if alert.get("threshold") is None:
        return PITR_METRICS_MAX_AGE_SECONDS if alert["test"] == "age" else None
    return float(thresholds.get(alert["threshold"], DEFAULT_THRESHOLDS[alert["threshold"]]))


def _fires(alert, value, now, thresholds):
    """(fires, the value the rule's expression has: an age or the sample's value)."""
    test = alert["test"]
    if test in ("age", "age_set"):
        age = now - value
        return age > _threshold(alert, thresholds) and (test == "age" or value > 0), age
    if test == "zero":
        return value == 0, value
    return value > 0, value


class _Labels(dict):
    def __missing__(self, key):
        return ""  # as Prometheus's $labels.x of a label the alert has not


def _go_number(value):
    """A float as Go's %v (Prometheus's {{ $value }}) writes it, for the values the rules show."""
    return "%d" % value if float(value).is_integer() and abs(value) < 1e21 else "%g" % value


def render_summary(alert, labels, value):
    """The alert's summary annotation, as the rules file's template renders it (``value``: the
    expression's value, an age for the age tests). Without an ``instance`` label (the textfiles
    have none; Prometheus adds it) the text starts after its ": "."""
    fields = _Labels(labels)
    fields.update(value=_go_number(value), age=humanize_duration(value),
                  since=" yet" if value > 1e9 else " for " + humanize_duration(value))
    text = alert["template"].format_map(fields)
    return text if labels.get("instance") else text[len(": "):] if text.startswith(": ") else text


def evaluate(samples, now, thresholds=None):
    """The alerts that fire on ``samples`` (parse_textfiles) at Unix time ``now`` with ``thresholds``
    (DEFAULT_THRESHOLDS for keys missing): a list of {name, severity, summary, labels}, labels the
    sample's, in the order of ALERTS then of the labels. ``for:`` delays are not applied."""
    thresholds = thresholds or {}
    fired = []
    for alert in ALERTS:
        selector = alert.get("selector", ())
        found = []
        for (name, label_items), value in samples.items():
            labels = dict(label_items)
            if name != alert["metric"] or any(labels.get(k) != v for k, v in selector):
                continue
            fires, shown = _fires(alert, value, now, thresholds)
            if fires:
                found.append(dict(name=alert["name"], severity=alert["severity"], labels=labels,
                                  summary=render_summary(alert, labels, shown)))
        fired.extend(sorted(found, key=lambda item: sorted(item["labels"].items())))
    return fired
