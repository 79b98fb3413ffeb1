# -*- coding: utf-8 -*-
"""Benchmark harness: the collection's modules against the bare PostgreSQL tools, in one run.

For each database size (seeded with the lift_simulator fixture generator) it measures, alternating
the contenders' order and taking the median of --repeat runs:

- backups: bare ``pg_dump -Fp -f`` against the backup module (plain; plain + zstd; plain + zstd + age; custom);
- restores: the strategy document's procedure (drop, create, ``psql -f``: the downtime is the whole
  restore) against the restore module's swap (its downtime_s), and the swap's total time, with jobs 1
  (serial) and jobs 2 (the parallel load), against a bare ``createdb`` + ``psql -f`` into a new
  database; a custom archive's swap with jobs 2 against a bare ``createdb`` + ``pg_restore -j2``;
- verification: quick verification throughput (MB/s) on the plain dump; restore-level verification time;
- pgBackRest beside them (bench/pgbackrest_side.py; physical, not like with like): a full backup of the
  same cluster (time, repository size) and its restore into an empty data directory until the
  restored cluster has finished recovery and answers;
- the fixed cost: a tiny database (--tiny-mb, default 1 MB) gets the backup and restore rows too;
- another shape of database (--wide-sizes, default the --sizes; tests/lib/wide_fixture.py: thousands
  of systems, 2-10 versions each, 1-6 kB JSON configurations instead of hundreds of thousands of
  small simulation_run rows): bare pg_dump -Fp, module plain and plain + zstd again.

The modules run for real, through ansible-playbook as the postgres OS user over the local socket; their
times are the ones they report (duration_s, downtime_s, measured inside the module), and the wall
time including Ansible's start-up is recorded too. The bare tools run as the same user over the same
socket. The cluster runs with fsync on (durable), as a real server.

Writes <out>/<date>.json, <out>/<date>.md (tables with the ratios and the targets) and, when
matplotlib is available, <out>/<date>.png (time against size per method).

    make bench                                   # 1 (tiny), 100, 500 and 1500 MB, 5 runs each
    .venv/bin/python bench/bench.py --sizes 50 --wide-sizes 50 --repeat 1 --out /tmp/bench    # quick look
    .venv/bin/python bench/bench.py --sizes 20 --no-pgbackrest --wide-sizes '' --tiny-mb 0 ...   # as before
"""
from __future__ import absolute_import, division, print_function

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, ".cache", "collections"))

import pglab  # noqa: E402  pylint: disable=wrong-import-position
import wide_fixture  # noqa: E402  pylint: disable=wrong-import-position
from pgbackrest_side import PgBackRestSide  # noqa: E402  pylint: disable=wrong-import-position
import checklist_cost  # noqa: E402  pylint: disable=wrong-import-position

TARGETS = {
    "backup_plain_ratio": ("backup module plain / bare pg_dump -Fp", "<=", 1.05),
    "backup_zstd_ratio": ("backup module zstd / bare pg_dump -Fp (time)", "<=", 1.05),
    "zstd_size_ratio": ("zstd backup size / plain dump size", "<=", 0.10),
    "age_stage_ratio": ("backup module zstd + age / zstd alone (the encryption stage's cost)", "<=", 1.05),
    "swap_downtime_s": ("restore swap downtime (s)", "<", 1.0),
    "swap_total_ratio": ("restore swap total, jobs 1 / bare createdb + psql -f", "<=", 1.15),
    "swap_j2_ratio": ("restore swap total, jobs 2 / bare createdb + psql -f", "<=", 0.80),
    "swap_custom_ratio": ("restore swap total of a custom archive, jobs 2 / bare createdb + pg_restore -j2", "<=", 1.0),
    "quick_verify_mb_s": ("quick verification of a plain dump (MB/s)", ">=", 800.0),
}


def log(message):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), message))
    sys.stderr.flush()


class Bench(object):
    def __init__(self, cluster, work):
        self.pg = cluster
        self.work = work
        self._age_recipient = None

    # --- the contenders -------------------------------------------------------------------

    def bare(self, argv, database=None, stdin=None):
        """Run a PostgreSQL client as postgres over the socket; return its wall time."""
        env = dict(os.environ, PGHOST=self.pg.socket_dir, PGPORT=str(self.pg.port), PGUSER="postgres")
        if database:
            env["PGDATABASE"] = database
        started = time.monotonic()
        subprocess.run(["runuser", "-u", "postgres", "--"] + argv, env=env, check=True, stdin=stdin,
                       stdout=subprocess.DEVNULL)
        return time.monotonic() - started

    def module(self, playbook, key, args):
        started = time.monotonic()
        run = pglab.run_playbook(playbook, {key: dict(self.pg.connection_vars(), **args)})
        wall = time.monotonic() - started
        result = run.results[-1]["hosts"]["localhost"]
        if run.rc != 0:
            raise RuntimeError("%s failed: %s" % (playbook, result.get("msg")))
        return result, wall

    def fresh_dir(self, name):
        path = os.path.join(self.work, name)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        shutil.chown(path, "postgres")
        return path

    def age_recipient(self):
        """The public key of an age identity made for the run (encrypted backups are timed, never read)."""
        if self._age_recipient is None:
            identity = os.path.join(self.work, "bench-age.key")
            subprocess.run(["age-keygen", "-o", identity], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            self._age_recipient = subprocess.run(["age-keygen", "-y", identity], check=True, stdout=subprocess.PIPE,
                                                 universal_newlines=True).stdout.strip()
        return self._age_recipient

    def backups(self, database, plain_only=False):
        """The backup contenders, alternating; ``plain_only``: bare pg_dump -Fp and the module's plain and
        plain + zstd backups (what the wide-shaped databases get: the plain targets are what they check)."""
        out = self.fresh_dir("backups")
        samples = {}

        def bare_plain():
            path = os.path.join(out, "bare.sql")
            seconds = self.bare([self.pg.bin_path("pg_dump"), "-Fp", "-f", path], database)
            samples.setdefault("bare_plain_size", os.path.getsize(path))
            os.unlink(path)
            return seconds

        def bare_custom():
            path = os.path.join(out, "bare.dump")
            seconds = self.bare([self.pg.bin_path("pg_dump"), "-Fc", "-f", path], database)
            os.unlink(path)
            return seconds

        def module(fmt, compression, encrypted=False):
            tag = "%s_%s%s" % (fmt, compression, "_age" if encrypted else "")
            extra = dict(encryption="age", encryption_recipients=[self.age_recipient()]) if encrypted else {}

            def run():
                result, wall = self.module("backup_module.yml", "backup_args", dict(
                    dest_dir=out, database=database, format=fmt, compression=compression,
                    name_template="m_%s_%%H%%M%%S_%%f" % tag, **extra))
                samples.setdefault("%s_size" % tag, result["size_bytes"])
                samples.setdefault("walls", {}).setdefault(tag, []).append(wall)
                if result.get("timings"):
                    samples.setdefault("timings", {}).setdefault(tag, []).append(result["timings"])
                os.unlink(result["path"])
                os.unlink(result["manifest_path"])
                return result["duration_s"]
            return run

        contenders = [("bare_pg_dump_plain", bare_plain), ("module_plain", module("plain", "none")),
                      ("module_plain_zstd", module("plain", "zstd")),
                      ("module_plain_zstd_age", module("plain", "zstd", encrypted=True)),
                      ("module_custom", module("custom", "gzip")),
                      ("bare_pg_dump_custom", bare_custom)]
        if plain_only:
            contenders = contenders[:3]
        return self.alternate(contenders), samples

    def restores(self, database, repeat):
        """The strategy's restore, the module's swap (jobs 1 and 2) and bare psql -f, all from one
        plain dump; the module's swap of a custom archive and bare pg_restore -j2 of it."""
        out = self.fresh_dir("restore-source")
        made, _wall = self.module("backup_module.yml", "backup_args", dict(dest_dir=out, database=database))
        dump = made["path"]
        archive = self.module("backup_module.yml", "backup_args", dict(
            dest_dir=out, database=database, format="custom", name_template="c_%H%M%S_%f"))[0]["path"]
        target = "bench_target"
        self.pg.psql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % target)
        self.pg.psql("CREATE DATABASE %s TEMPLATE %s OWNER lift_admin" % (target, database))
        walls = {}

        def strategy():
            # The strategy document: stop app, drop, create, restore. Downtime = all of it.
            started = time.monotonic()
            self.bare([self.pg.bin_path("dropdb"), "--if-exists", target])
            self.bare([self.pg.bin_path("createdb"), "-O", "lift_admin", target])
            self.bare([self.pg.bin_path("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", dump], target)
            return time.monotonic() - started

        def swap(path=dump, jobs=1):
            # The module's default keeps the previous database for a rollback; dropping it (a
            # checkpoint in PostgreSQL, so it costs as much as flushing the restored data) is
            # housekeeping after the restore, done here outside the timing like the bare side's.
            def run():
                result, wall = self.module("restore_module.yml", "restore_args", dict(
                    path=path, database=target, force=True, jobs=jobs))
                walls.setdefault("swap_downtime", []).append(result["downtime_s"])
                walls.setdefault("swap_wall", []).append(wall)
                walls.setdefault("load", set()).add(result.get("load"))
                self.pg.psql('DROP DATABASE "%s" WITH (FORCE)' % result["previous_database"])
                return result["duration_s"]
            return run

        def bare_psql():
            # A bare restore into a new database: createdb, then psql -f (the module's total
            # likewise includes creating its staging database).
            self.pg.psql("DROP DATABASE IF EXISTS bench_bare WITH (FORCE)")
            seconds = self.bare([self.pg.bin_path("createdb"), "-O", "lift_admin", "bench_bare"])
            seconds += self.bare([self.pg.bin_path("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", dump],
                                 "bench_bare")
            self.pg.psql("DROP DATABASE bench_bare WITH (FORCE)")
            return seconds

        def bare_pg_restore():
            self.pg.psql("DROP DATABASE IF EXISTS bench_bare WITH (FORCE)")
            seconds = self.bare([self.pg.bin_path("createdb"), "-O", "lift_admin", "bench_bare"])
            seconds += self.bare([self.pg.bin_path("pg_restore"), "--exit-on-error", "-j2", "-d", "bench_bare",
                                  archive])
            self.pg.psql("DROP DATABASE bench_bare WITH (FORCE)")
            return seconds

        times = self.alternate([("strategy_restore", strategy), ("module_swap", swap(jobs=1)),
                                ("module_swap_j2", swap(jobs=2)), ("bare_psql", bare_psql),
                                ("module_swap_custom_j2", swap(archive, 2)), ("bare_pg_restore_j2", bare_pg_restore)],
                               repeat)
        times["swap_downtime"] = walls["swap_downtime"]
        log("  loads: %s" % ", ".join(sorted(str(x) for x in walls["load"])))
        self.pg.psql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % target)
        return times, dump, made

    def verifications(self, dump, size, repeat):
        times = {"quick": [], "restore": []}
        for _i in range(repeat):
            result, _wall = self.module("verify_module.yml", "verify_args", dict(path=dump))
            times["quick"].append(result["duration_s"])
            result, _wall = self.module("verify_module.yml", "verify_args", dict(path=dump, level="restore"))
            times["restore"].append(result["duration_s"])
        times["quick_mb_s"] = [size / 1e6 / t for t in times["quick"]]
        return times

    def alternate(self, contenders, repeat=None):
        repeat = repeat or self.repeat
        times = {name: [] for name, _f in contenders}
        for i in range(repeat):
            order = contenders if i % 2 == 0 else list(reversed(contenders))
            for name, func in order:
                seconds = func()
                times[name].append(seconds)
                log("  %-22s %.3f s" % (name, seconds))
        return times


def median(values):
    return statistics.median(values) if values else None


def summarize_backups(size_mb, db_bytes, backup_times, samples, variant):
    m = {k: median(v) for k, v in backup_times.items()}
    plain_size = samples["bare_plain_size"]
    ratios = {"backup_plain_ratio": m["module_plain"] / m["bare_pg_dump_plain"],
              "backup_zstd_ratio": m["module_plain_zstd"] / m["bare_pg_dump_plain"],
              "zstd_size_ratio": samples["plain_zstd_size"] / plain_size}
    if "module_custom" in m:
        ratios.update(backup_custom_ratio=m["module_custom"] / m["bare_pg_dump_plain"],
                      age_stage_ratio=m["module_plain_zstd_age"] / m["module_plain_zstd"])
    return {
        "size_mb": size_mb,
        "variant": variant,
        "database_bytes": db_bytes,
        "plain_dump_bytes": plain_size,
        "medians_s": m,
        "runs_s": dict(backup_times),
        "sizes": {k: v for k, v in samples.items() if k.endswith("_size")},
        # ansible-playbook's wall time around the module (start-up, connection, result), per contender.
        "walls_median_s": {k: median(v) for k, v in samples.get("walls", {}).items()},
        "timings": samples.get("timings", {}),
        "ratios": ratios,
    }


def summarize_pgbackrest(runs):
    if not runs:
        return None
    return dict({k: median(v) for k, v in runs.items()}, runs=runs)


def summarize(size_mb, db_bytes, backup_times, samples, restore_times, verify_times, pgbackrest=None):
    m = {k: median(v) for k, v in backup_times.items()}
    r = {k: median(v) for k, v in restore_times.items()}
    plain_size = samples["bare_plain_size"]
    backups = summarize_backups(size_mb, db_bytes, backup_times, samples, "fixture")
    return {
        "size_mb": size_mb,
        "database_bytes": db_bytes,
        "plain_dump_bytes": plain_size,
        "medians_s": dict(m, **r, quick_verify=median(verify_times["quick"]),
                          restore_verify=median(verify_times["restore"])),
        "runs_s": dict(backup_times, **restore_times, **verify_times),
        "sizes": {k: v for k, v in samples.items() if k.endswith("_size")},
        "walls_median_s": backups["walls_median_s"],
        "timings": backups["timings"],
        "pgbackrest": summarize_pgbackrest(pgbackrest),
        "ratios": {
            "backup_plain_ratio": m["module_plain"] / m["bare_pg_dump_plain"],
            "backup_zstd_ratio": m["module_plain_zstd"] / m["bare_pg_dump_plain"],
            "backup_custom_ratio": m["module_custom"] / m["bare_pg_dump_plain"],
            "zstd_size_ratio": samples["plain_zstd_size"] / plain_size,
            "age_stage_ratio": m["module_plain_zstd_age"] / m["module_plain_zstd"],
            "swap_downtime_s": r["swap_downtime"],
            "strategy_downtime_s": r["strategy_restore"],
            "swap_total_ratio": r["module_swap"] / r["bare_psql"],
            "swap_j2_ratio": r["module_swap_j2"] / r["bare_psql"],
            "swap_custom_ratio": r["module_swap_custom_j2"] / r["bare_pg_restore_j2"],
            "quick_verify_mb_s": median(verify_times["quick_mb_s"]),
            "restore_verify_s": median(verify_times["restore"]),
        },
    }


def met(key, value):
    _label, op, bound = TARGETS[key]
    return {"<=": value <= bound, "<": value < bound, ">=": value >= bound}[op]


def size_label(s):
    label = "%g MB" % s["size_mb"]
    if s.get("variant") == "wide":
        label += " wide"
    if s.get("tiny"):
        label += " (tiny)"
    return label


def backup_rows(entries):
    lines = ["| size | DB size | bare pg_dump -Fp | module plain | ratio | module zstd | ratio | zstd size | "
             "module zstd + age | / zstd | module custom | ratio |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in entries:
        md, ra = s["medians_s"], s["ratios"]
        cells = [size_label(s), "%.0f MB" % (s["database_bytes"] / 1e6), "%.2f s" % md["bare_pg_dump_plain"],
                 "%.2f s" % md["module_plain"], "%.3f" % ra["backup_plain_ratio"], "%.2f s" % md["module_plain_zstd"],
                 "%.3f" % ra["backup_zstd_ratio"], "%.1f %%" % (100 * ra["zstd_size_ratio"])]
        if "module_custom" in md:
            cells += ["%.2f s" % md["module_plain_zstd_age"], "%.3f" % ra["age_stage_ratio"],
                      "%.2f s" % md["module_custom"], "%.3f" % ra["backup_custom_ratio"]]
        else:
            cells += ["-"] * 4   # the wide-shaped databases: the plain contenders only
        lines.append("| %s |" % " | ".join(cells))
    return lines


def timing_rows(entries, tag="plain_none"):
    """The backup module's own per-phase ``timings`` (when its result has them), median per phase."""
    phases = {}
    for s in entries:
        for sample in s.get("timings", {}).get(tag, []):
            for name, value in sample.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    phases.setdefault(size_label(s), {}).setdefault(name, []).append(value)
    if not phases:
        return []
    names = sorted({name for per in phases.values() for name in per})
    lines = ["", "Backup module plain, its own per-phase timings (`timings` in its result; median, s):", "",
             "| size | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, per in phases.items():
        lines.append("| %s | %s |" % (label, " | ".join("%.3f" % median(per[n]) if n in per else "" for n in names)))
    return lines


def markdown(report):
    lines = ["# Benchmark %s" % report["date"], "",
             "Machine: %s, %d cores; PostgreSQL %s; fsync on; median of %d runs, contenders alternating."
             % (report["machine"], report["cores"], report["server_version"], report["repeat"])
             + ("" if "load_average_start" not in report else " Load average (1, 5, 15 min) %s at the start, %s at the end."
                % tuple("/".join("%.1f" % v for v in report.get(k) or ()) or "?"
                        for k in ("load_average_start", "load_average_end"))), ""]
    wide_note = " and the wide-shaped ones (many systems and versions, bigger JSON)" if report.get("wide") else ""
    lines += ["Backups (logical), the fixture's databases%s:" % wide_note, ""]
    # The tiny database (report["tiny"]) is the fixed-cost row: shown, not held to the targets nor charted.
    tiny = [report["tiny"]] if report.get("tiny") else []
    rows = tiny + report["sizes"]
    lines += backup_rows(rows + report.get("wide", []))
    lines += ["", "| size | strategy restore (= downtime) | module swap total, jobs 1 | jobs 2 | swap downtime | "
              "bare createdb + psql -f | swap / bare, jobs 1 | jobs 2 | custom swap, jobs 2 | bare pg_restore -j2 | "
              "custom / bare | quick verify | restore verify |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in rows:
        md, ra = s["medians_s"], s["ratios"]
        lines.append("| %s | %.2f s | %.2f s | %.2f s | %.4f s | %.2f s | %.3f | %.3f | %.2f s | %.2f s | %.3f | "
                     "%.0f MB/s | %.2f s |" % (
                         size_label(s), md["strategy_restore"], md["module_swap"], md["module_swap_j2"],
                         ra["swap_downtime_s"], md["bare_psql"], ra["swap_total_ratio"], ra["swap_j2_ratio"],
                         md["module_swap_custom_j2"], md["bare_pg_restore_j2"], ra["swap_custom_ratio"],
                         ra["quick_verify_mb_s"], ra["restore_verify_s"]))
    with_pgbackrest = [s for s in rows if s.get("pgbackrest")]
    if with_pgbackrest:
        info = report.get("pgbackrest_setup", {})
        lines += ["", "Physical (pgBackRest %s, compress-type %s, process-max %s, full backups of the whole cluster; "
                  "restore into an empty directory, recovery type immediate, until the restored cluster answers) "
                  "beside logical (the backup module's plain dump of one database, and its swap restore with jobs 2). "
                  "Not like with like: the physical backup copies every database's files, indexes as built, and "
                  "needs WAL archiving on; the logical restore rebuilds the indexes." % (
                      info.get("version", "?").replace("pgBackRest ", ""), info.get("compress_type"),
                      info.get("process_max")), "",
                  "| size | cluster size | physical: pgBackRest full backup | repository size | logical: module plain "
                  "backup | dump size | logical: module zstd | zstd size | physical: pgBackRest restore + recovery | "
                  "(restore / start) | logical: module swap total, jobs 2 | bare createdb + psql -f |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in with_pgbackrest:
            md, pb, sz = s["medians_s"], s["pgbackrest"], s["sizes"]
            lines.append("| %s | %.0f MB | %.2f s | %.1f MB | %.2f s | %.1f MB | %.2f s | %.1f MB | %.2f s | "
                         "%.2f s / %.2f s | %.2f s | %.2f s |" % (
                             size_label(s), pb["cluster_bytes"] / 1e6, pb["backup_s"], pb["repo_bytes"] / 1e6,
                             md["module_plain"], sz["plain_none_size"] / 1e6, md["module_plain_zstd"],
                             sz["plain_zstd_size"] / 1e6, pb["restore_total_s"], pb["restore_s"], pb["start_s"],
                             md["module_swap_j2"], md["bare_psql"]))
    if tiny:
        lines += ["", "Fixed cost (the tiny database): what the module adds to bare pg_dump, and what "
                  "ansible-playbook adds around the module (start-up, connection, result) in these runs.", "",
                  "| size | bare pg_dump -Fp | module plain (duration_s) | module - bare | ansible-playbook wall | "
                  "wall - module | module swap total, jobs 1 | bare createdb + psql -f |", "|---|---|---|---|---|---|---|---|"]
        for s in tiny:
            md = s["medians_s"]
            wall = s.get("walls_median_s", {}).get("plain_none")
            lines.append("| %s | %.3f s | %.3f s | %+.3f s | %s | %s | %.3f s | %.3f s |" % (
                size_label(s), md["bare_pg_dump_plain"], md["module_plain"],
                md["module_plain"] - md["bare_pg_dump_plain"], "%.2f s" % wall if wall else "?",
                "%+.2f s" % (wall - md["module_plain"]) if wall else "?", md["module_swap"], md["bare_psql"]))
    judged = report["sizes"]
    wide = report.get("wide", [])
    lines += timing_rows(rows + wide)
    if report.get("checklist"):
        lines += ["", "The manifest's checklist against the number of lift systems (bench/checklist_cost.py; its "
                  "figures per system are digests; `old` is the earlier full maps, measured with the earlier queries):", "",
                  checklist_cost.markdown(report["checklist"]).rstrip("\n")]
    lines += ["", "| target | bound | " + " | ".join(size_label(s) for s in judged + wide) + " |",
              "|---|---|" + "---|" * len(judged + wide)]
    for key, (label, op, bound) in TARGETS.items():
        cells = []
        for s in judged + wide:
            value = s["ratios"].get(key)
            if value is None:
                cells.append("")
                continue
            cells.append("%s %s" % (("%.3f" % value) if value < 100 else ("%.0f" % value),
                                    "met" if met(key, value) else "**missed**"))
        lines.append("| %s | %s %s | %s |" % (label, op, bound, " | ".join(cells)))
    return "\n".join(lines) + "\n"


def chart(report, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no chart (make bench installs it)")
        return None
    sizes = [s["database_bytes"] / 1e6 for s in report["sizes"]]
    series = [("bare pg_dump -Fp", "bare_pg_dump_plain"), ("backup module plain", "module_plain"),
              ("backup module zstd", "module_plain_zstd"), ("backup module custom", "module_custom"),
              ("strategy restore (= downtime)", "strategy_restore"), ("restore module swap (total)", "module_swap"),
              ("restore module swap, jobs 2 (total)", "module_swap_j2"),
              ("bare createdb + psql -f", "bare_psql"), ("restore module swap downtime", "swap_downtime"),
              ("verify level restore", "restore_verify")]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for label, key in series:
        ax.plot(sizes, [s["medians_s"][key] for s in report["sizes"]], marker="o", label=label)
    physical = [s for s in report["sizes"] if s.get("pgbackrest")]
    for label, key, color in (("pgBackRest full backup (physical)", "backup_s", "black"),
                              ("pgBackRest restore + recovery (physical)", "restore_total_s", "dimgray")):
        if physical:
            ax.plot([s["database_bytes"] / 1e6 for s in physical], [s["pgbackrest"][key] for s in physical],
                    marker="s", linestyle="--", color=color, label=label)
    ax.set_xlabel("database size (MB)")
    ax.set_ylabel("seconds (median)")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_title("lift_simulator.postgresql against the bare PostgreSQL tools (%s)" % report["date"])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,500,1500", help="database sizes in MB (default 100,500,1500)")
    parser.add_argument("--tiny-mb", type=float, default=1.0,
                        help="a tiny database first, for the fixed cost (backups and restores; default 1 MB; 0: none)")
    parser.add_argument("--wide-sizes", default=None,
                        help="sizes in MB of the wide-shaped databases (tests/lib/wide_fixture.py) whose backups "
                             "are measured too (default: the --sizes; '' for none)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per contender (median; default 5)")
    parser.add_argument("--no-pgbackrest", dest="pgbackrest", action="store_false",
                        help="leave pgBackRest out (physical backup and restore beside the logical ones)")
    parser.add_argument("--pgbackrest-compress", default="zst", choices=["zst", "lz4", "gz", "bz2", "none"],
                        help="pgBackRest compress-type (default zst)")
    parser.add_argument("--pgbackrest-processes", type=int, default=2, help="pgBackRest process-max (default 2)")
    parser.add_argument("--checklist-systems", default="1000,20000,200000",
                        help="numbers of lift systems at which the manifest checklist's size and cost are measured "
                             "(bench/checklist_cost.py; '' for none)")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"), help="where results go")
    parser.add_argument("--docs", action="store_true", help="also rewrite docs/performance.md's results")
    args = parser.parse_args(argv)
    sizes = [float(s) for s in args.sizes.split(",") if s]
    wide_sizes = sizes if args.wide_sizes is None else [float(s) for s in args.wide_sizes.split(",") if s]
    checklist_systems = [int(n) for n in args.checklist_systems.split(",") if n]
    if args.tiny_mb:
        sizes = [args.tiny_mb] + sizes
    os.makedirs(args.out, exist_ok=True)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    cluster = pglab.PgCluster()
    cluster.durable = True
    cluster.settings = {"shared_buffers": "512MB", "max_wal_size": "4GB", "checkpoint_timeout": "30min"}
    cluster.start_fresh()
    work = pglab.postgres_owned_dir("lift-bench-")
    report = {"date": date, "machine": platform.platform(), "cores": os.cpu_count(), "repeat": args.repeat,
              "sizes": [], "wide": [], "phases_s": {}}
    # Other jobs on the machine skew every figure: the load average before and after says how much.
    report["load_average_start"] = os.getloadavg()
    physical = None
    try:
        cluster.psql("CREATE ROLE lift_admin LOGIN")
        report["server_version"] = cluster.psql("SHOW server_version")
        bench = Bench(cluster, work)
        bench.repeat = args.repeat
        if args.pgbackrest:
            physical = PgBackRestSide(cluster, work, args.pgbackrest_compress, args.pgbackrest_processes, log)
            report["pgbackrest_setup"] = {"version": physical.version, "compress_type": args.pgbackrest_compress,
                                          "process_max": args.pgbackrest_processes}
        for size in sizes:
            label = "%g" % size
            database = "bench_%s%s" % (label.replace(".", "_"), "_tiny" if size == args.tiny_mb and "tiny" not in report else "")
            log("seeding %s (%s MB)" % (database, label))
            pglab.load_fixture(cluster, database, size_mb=size, seed=int(size))
            cluster.psql("GRANT ALL PRIVILEGES ON DATABASE %s TO lift_admin; CHECKPOINT" % database)
            db_bytes = int(cluster.psql("SELECT pg_database_size('%s')" % database))
            started = time.monotonic()
            log("backups of %s MB" % label)
            backup_times, samples = bench.backups(database)
            log("restores of %s MB" % label)
            restore_times, dump, made = bench.restores(database, args.repeat)
            log("verifications of %s MB" % label)
            verify_times = bench.verifications(dump, made["size_bytes"], args.repeat)
            report["phases_s"]["logical %s MB" % label] = time.monotonic() - started
            pgbackrest = None
            if physical:
                log("pgBackRest (physical) on the cluster with %s MB" % label)
                started = time.monotonic()
                pgbackrest = physical.measure(args.repeat, cluster.settings)
                report["phases_s"]["pgbackrest %s MB" % label] = time.monotonic() - started
            entry = summarize(size, db_bytes, backup_times, samples, restore_times, verify_times, pgbackrest)
            if args.tiny_mb and size == args.tiny_mb and "tiny" not in report:
                entry["tiny"] = True
                report["tiny"] = entry
            else:
                report["sizes"].append(entry)
            cluster.psql("DROP DATABASE %s WITH (FORCE)" % database)
        for size in wide_sizes:
            label = "%g" % size
            database = "bench_wide_%s" % label.replace(".", "_")
            log("seeding %s (%s MB, wide shape)" % (database, label))
            started = time.monotonic()
            wide_fixture.load(cluster, database, size, seed=int(size))
            cluster.psql("GRANT ALL PRIVILEGES ON DATABASE %s TO lift_admin; CHECKPOINT" % database)
            report["phases_s"]["seed wide %s MB" % label] = time.monotonic() - started
            db_bytes = int(cluster.psql("SELECT pg_database_size('%s')" % database))
            systems = int(cluster.psql("SELECT count(*) FROM lift_simulator.lift_system", database))
            versions = int(cluster.psql("SELECT count(*) FROM lift_simulator.lift_system_version", database))
            log("backups of %s MB wide (%d systems, %d versions)" % (label, systems, versions))
            started = time.monotonic()
            backup_times, samples = bench.backups(database, plain_only=True)
            report["phases_s"]["backups wide %s MB" % label] = time.monotonic() - started
            entry = summarize_backups(size, db_bytes, backup_times, samples, "wide")
            entry.update(systems=systems, versions=versions)
            report["wide"].append(entry)
            cluster.psql("DROP DATABASE %s WITH (FORCE)" % database)
        if checklist_systems:
            log("checklist cost at %s lift systems" % ", ".join(str(n) for n in checklist_systems))
            started = time.monotonic()
            report["checklist"] = checklist_cost.measure(cluster, systems=checklist_systems, repeat=min(args.repeat, 3))
            report["phases_s"]["checklist cost"] = time.monotonic() - started
        report["load_average_end"] = os.getloadavg()
    finally:
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)
    base = os.path.join(args.out, date)
    with open(base + ".json", "w") as handle:
        json.dump(report, handle, indent=2, sort_keys=True)
    table = markdown(report)
    with open(base + ".md", "w") as handle:
        handle.write(table)
    png = chart(report, base + ".png")
    if args.docs:
        update_docs(table, png)
    sys.stdout.write(table)
    return 0


def update_docs(table, png):
    path = os.path.join(ROOT, "docs", "performance.md")
    with open(path) as handle:
        text = handle.read()
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    body = table.split("\n", 2)[2]
    if png:
        body += "\n![time against size](%s)\n" % os.path.relpath(png, os.path.dirname(path))
    text = text.split(start)[0] + start + "\n" + body + end + text.split(end)[1]
    with open(path, "w") as handle:
        handle.write(text)


if __name__ == "__main__":
    sys.exit(main())
