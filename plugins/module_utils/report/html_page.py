# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The status page as HTML: one self-contained document (inline CSS, inline SVG, no script, no
external asset) from a page model, one section per database. Every value is escaped (escape.py).

The model (built by status_page.py for the job and fleet.py for backup_info results)::

    {"title": str, "generated": ISO text, "sections": [section, ...]}
    section: {"host", "database", "job" (or None), "last_run" (the job's <name>.last-run.json or None),
              "backups" (backup_info's RV(backups) entries, newest first; ``duration_seconds`` optional),
              "copies" (backup_info's RV(copies), or []), "offsite" (list of {name, location, last_ok,
              last_success, newest_copy, error}), "drills" (drill JSON reports, newest first),
              "alerts" (alerts.evaluate's list, or None: not evaluated), "notes" (list of text)}

Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.report.escape import esc
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.report.svg_chart import chart
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.units import human_bytes

BACKUP_ROWS = 15
CHART_POINTS = 60
DRILL_ROWS = 10

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;background:#f4f6f8;color:#1d2329}
header{background:#1f3a5f;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;font-size:13px;color:#c9d6e8}
main{padding:12px 24px 32px}
section.db{background:#fff;border:1px solid #d8dde3;border-radius:6px;margin:14px 0;padding:8px 18px 16px}
h2{font-size:19px;margin:8px 0}
h3{font-size:15px;margin:16px 0 6px;color:#2c3e55}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{border-bottom:1px solid #e3e7ec;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ok{color:#137333;font-weight:600}
.bad{color:#b3261e;font-weight:600}
.warn{color:#9a6700;font-weight:600}
.muted{color:#6b7785}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.badge.ok{background:#e6f4ea}
.badge.bad{background:#fce8e6}
.badge.warn{background:#fff4d6}
ul.alerts{margin:4px 0;padding-left:18px}
.summary{display:flex;flex-wrap:wrap;gap:10px;margin:6px 0}
.card{border:1px solid #e3e7ec;border-radius:6px;padding:6px 12px;min-width:150px;background:#fafbfc}
.card b{display:block;font-size:17px}
.card span{font-size:12px;color:#6b7785}
code{font-size:12px;word-break:break-all}
"""


def _badge(ok, yes="ok", no="FAILED"):
    if ok is None:
        return '<span class="badge warn">unknown</span>'
    return '<span class="badge %s">%s</span>' % ("ok" if ok else "bad", esc(yes if ok else no))


def _duration(seconds):
    if seconds is None:
        return '<span class="muted">&ndash;</span>'
    seconds = float(seconds)
    if seconds < 60:
        return esc("%.1f s" % seconds)
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return esc("%d:%02d:%02d" % (hours, minutes, secs) if hours else "%d:%02d min" % (minutes, secs))


def _age(days):
    if days is None:
        return ""
    days = float(days)
    if days < 0:
        return "in the future"
    if days < 1.0 / 24:
        return "%d min ago" % int(days * 1440)
    if days < 1:
        return "%.1f h ago" % (days * 24)
    return "%.1f days ago" % days


def _checksum(backup):
    if backup.get("problem") == "checksum_mismatch" or backup.get("checksum_ok") is False:
        return '<span class="bad">mismatch</span>'
    if backup.get("checksum_ok"):
        return '<span class="ok">verified%s</span>' % (" by the run" if backup.get("verified_by_run") else "")
    if backup.get("manifest_valid"):
        return '<span class="muted">size matches (not hashed)</span>' if backup.get("good") else \
            '<span class="muted">not hashed</span>'
    return '<span class="muted">no manifest</span>'


def _state(backup):
    if backup.get("future"):
        return '<span class="badge warn">dated in the future</span>'
    if backup.get("good"):
        return '<span class="badge ok">good</span>'
    return '<span class="badge bad">%s</span>' % esc(backup.get("problem") or "not good")


def _where(backup, copies_by_name):
    copy = copies_by_name.get(backup.get("name"))
    if copy is None:
        return "local"
    places = []
    for label in sorted(copy.get("where") or {}):
        place = copy["where"][label]
        css = "ok" if place.get("good") else "bad"
        why = "" if place.get("good") else " (%s)" % esc(place.get("problem") or "not good")
        places.append('<span class="%s">%s</span>%s' % (css, esc(label), why))
    for label in copy.get("missing_from") or []:
        places.append('<span class="muted">not on %s</span>' % esc(label))
    return ", ".join(places)


def _summary(section):
    backups = section.get("backups") or []
    good = [b for b in backups if b.get("good") and not b.get("future")]
    cards = []
    last = section.get("last_run")
    if last:
        ok = last.get("status") == "success"
        cards.append(('<b class="%s">%s</b>' % ("ok" if ok else "bad", esc(last.get("status") or "unknown")),
                      "last run %s" % (last.get("finished_at") or "")))
    if good:
        cards.append(("<b>%s</b>" % esc(_age(good[0].get("age_days"))), "newest good backup"))
        cards.append(("<b>%s</b>" % esc(human_bytes(good[0].get("size_bytes") or 0)), "its size"))
    else:
        cards.append(('<b class="bad">none</b>', "good backup"))
    cards.append(("<b>%d / %d</b>" % (len(good), len(backups)), "good / listed backups"))
    drills = section.get("drills") or []
    if drills:
        ok = bool(drills[0].get("success"))
        cards.append(('<b class="%s">%s</b>' % ("ok" if ok else "bad", "passed" if ok else "FAILED"),
                      "last drill %s" % (drills[0].get("finished") or "")))
    alerts = section.get("alerts")
    if alerts is not None:
        cards.append(('<b class="%s">%d</b>' % ("bad" if alerts else "ok", len(alerts)), "alerts firing"))
    return '<div class="summary">%s</div>' % "".join(
        '<div class="card">%s<span>%s</span></div>' % (value, esc(label)) for value, label in cards)


def _alerts(section):
    alerts = section.get("alerts")
    if alerts is None:
        return '<p class="muted">Not evaluated (no metrics).</p>'
    if not alerts:
        return '<p class="ok alerts-none">No alert would fire now.</p>'
    items = []
    for alert in alerts:
        css = "bad" if alert.get("severity") in ("critical", "page") else "warn"
        labels = alert.get("labels") or {}
        extra = ", ".join("%s=%s" % (k, labels[k]) for k in sorted(labels) if k not in ("database", "backup_job"))
        items.append('<li class="alert"><span class="%s">%s</span> <span class="badge %s">%s</span> %s%s</li>' % (
            css, esc(alert.get("name")), "bad" if css == "bad" else "warn", esc(alert.get("severity")),
            esc(alert.get("summary")), (' <span class="muted">(%s)</span>' % esc(extra)) if extra else ""))
    return '<ul class="alerts">%s</ul>' % "".join(items)


def _backups_table(section):
    backups = section.get("backups") or []
    if not backups:
        return '<p class="muted">No backups.</p>'
    copies = dict((c.get("name"), c) for c in section.get("copies") or [])
    rows = []
    for backup in backups[:BACKUP_ROWS]:
        rows.append(
            '<tr class="backup"><td>%s</td><td><code class="backup-name">%s</code></td><td>%s</td>'
            '<td class="num size">%s</td><td class="num duration">%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                esc(str(backup.get("time") or "").replace("T", " ")), esc(backup.get("name")),
                esc("/".join(str(x) for x in (backup.get("format"), backup.get("compression")) if x)),
                esc(human_bytes(backup.get("size_bytes") or 0)), _duration(backup.get("duration_seconds")),
                _checksum(backup), _state(backup), _where(backup, copies)))
    more = ""
    if len(backups) > BACKUP_ROWS:
        more = '<p class="muted">%d older backups not shown.</p>' % (len(backups) - BACKUP_ROWS)
    return ('<table class="backups"><thead><tr><th>time (UTC)</th><th>backup</th><th>format</th><th>size</th>'
            '<th>duration</th><th>checksum</th><th>state</th><th>copies</th></tr></thead><tbody>%s</tbody></table>%s'
            % ("".join(rows), more))


def _offsite_table(section):
    targets = section.get("offsite") or []
    if not targets:
        return '<p class="muted">No off-site targets.</p>'
    rows = []
    for target in targets:
        rows.append('<tr class="target"><td>%s</td><td><code>%s</code></td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
            esc(target.get("name")), esc(target.get("location") or ""),
            _badge(target.get("last_ok")) if target.get("error") is None else
            '<span class="bad">%s</span>' % esc(target.get("error")),
            esc(target.get("last_success") or "never"), esc(target.get("newest_copy") or "none")))
    return ('<table class="offsite"><thead><tr><th>target</th><th>location</th><th>last copy</th>'
            '<th>last successful copy</th><th>newest good copy</th></tr></thead><tbody>%s</tbody></table>'
            % "".join(rows))


def _drills_table(section):
    drills = section.get("drills") or []
    if not drills:
        return '<p class="muted">No restore drill yet.</p>'
    rows = []
    for drill in drills[:DRILL_ROWS]:
        sources = drill.get("sources") or [{}]
        for index, source in enumerate(sources):
            first = index == 0
            rows.append(
                '<tr class="drill"><td>%s</td><td>%s</td><td>%s</td><td><code>%s</code></td><td>%s</td>'
                '<td class="num restore-time">%s</td><td>%s</td></tr>' % (
                    esc(str(drill.get("started") or "").replace("T", " ")) if first else "",
                    (_badge(drill.get("success"), "passed") + ("" if drill.get("success") else
                                                               ' <span class="muted">%s</span>' % esc(drill.get("message"))))
                    if first else "",
                    esc(source.get("source")), esc(source.get("backup")),
                    esc(str(source.get("backup_time") or "").replace("T", " ")),
                    _duration(source.get("restore_seconds")),
                    (_badge(source.get("success"), "passed") + " " + esc(source.get("message") or ""))
                    if source else esc(drill.get("message"))))
    return ('<table class="drills"><thead><tr><th>drill started (UTC)</th><th>result</th><th>source</th>'
            '<th>restored backup</th><th>backup time</th><th>restore time</th><th>detail</th></tr></thead>'
            '<tbody>%s</tbody></table>' % "".join(rows))


def _chart(section):
    points = [b for b in (section.get("backups") or []) if b.get("good") or b.get("manifest_valid")]
    points = list(reversed(points[:CHART_POINTS]))
    svg = chart(points)
    return svg or '<p class="muted">No backups to chart.</p>'


def render_section(section):
    title = section.get("database") or ""
    if section.get("job") and section.get("job") != title:
        title = "%s (job %s)" % (title, section["job"])
    last = section.get("last_run") or {}
    last_text = ""
    if last.get("status") and last.get("status") != "success":
        last_text = '<p class="bad last-run-message">Last run %s (%s): %s</p>' % (
            esc(last.get("status")), esc(last.get("stage")), esc(last.get("message")))
    notes = "".join('<p class="warn note">%s</p>' % esc(n) for n in section.get("notes") or [])
    return ('<section class="db"><h2>%s <span class="muted">on %s</span></h2>%s%s%s'
            '<h3>Alerts that would fire now</h3>%s'
            '<h3>Newest backups</h3>%s'
            '<h3>Size and duration over time</h3>%s'
            '<h3>Where copies live</h3>%s'
            '<h3>Restore drills</h3>%s</section>' % (
                esc(title), esc(section.get("host")), _summary(section), last_text, notes, _alerts(section),
                _backups_table(section), _chart(section), _offsite_table(section), _drills_table(section)))


def render(page):
    """The whole document (text) of the page model ``page``."""
    sections = "".join(render_section(s) for s in page.get("sections") or [])
    if not sections:
        sections = '<p class="muted">No databases.</p>'
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
            'img-src data:">'
            '<title>%s</title><style>%s</style></head><body><header><h1>%s</h1><p>generated %s UTC by '
            'lift_simulator.postgresql</p></header><main>%s</main></body></html>\n' % (
                esc(page.get("title")), CSS, esc(page.get("title")),
                esc(str(page.get("generated") or "").replace("T", " ")), sections))
