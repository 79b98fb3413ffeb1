# -*- coding: utf-8 -*-
"""Fleet run: how the wall time of one ``ansible-playbook playbooks/backup.yml`` grows with the number
of database hosts it backs up at once.

Starts --hosts lab containers (lift-lab/debian12, systemd as PID 1, the options of lab/up.yml) named
lift-bench-fleet-<i> on a user-defined docker network (lift-bench-fleet), provisions them once with
lab/prepare.yml (the server role and a small sample database of --size-mb), then, for each N of
--counts, runs playbooks/backup.yml with ``--limit`` on the first N hosts, --repeat times, forks =
the largest N (so no host waits for a free fork). Reports per N the wall time of the whole
ansible-playbook run, the span of its backup task (first host's start to last host's end), and the
backup module's own duration_s per host (median and max).

Only what this script created is removed at the end (also after a failure or Ctrl-C): its
containers (by the names it gave them) and its network when it created it. Containers of the demo
(lift-db-1, lift-db-2) or of anything else are never touched; a container that already has one of
the names this script would use is an error (remove it yourself, or pass --keep to keep them and
--reuse on the next run).

Writes <out>/<date>-fleet.json and <out>/<date>-fleet.md.

    .venv/bin/python bench/fleet.py --counts 1,2,4,8 --repeat 3 --out /tmp/fleet     # about 15 min on 2 cores
    make bench-fleet
"""
from __future__ import absolute_import, division, print_function

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
IMAGE = "lift-lab/debian12:latest"
PREFIX = "lift-bench-fleet-"
NETWORK = "lift-bench-fleet"
LABEL = "lift-bench-fleet=true"


def log(message):
    sys.stderr.write("[fleet %s] %s\n" % (time.strftime("%H:%M:%S"), message))
    sys.stderr.flush()


def docker(*args, check=True):
    return subprocess.run(["docker"] + list(args), check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)


def exists(kind, name):
    return docker(kind, "inspect", name, check=False).returncode == 0


class Fleet(object):
    def __init__(self, hosts, work, reuse=False):
        self.names = ["%s%d" % (PREFIX, i) for i in range(1, hosts + 1)]
        self.work = work
        self.reuse = reuse
        self.created = []
        self.created_network = False
        self.inventory = os.path.join(work, "inventory.yml")

    def start(self):
        if not exists("network", NETWORK):
            docker("network", "create", "--label", LABEL, NETWORK)
            self.created_network = True
        for name in self.names:
            if exists("container", name):
                if not self.reuse:
                    raise RuntimeError("a container named %s exists already and this run did not create it: "
                                       "remove it (docker rm -f %s) or pass --reuse" % (name, name))
                docker("start", name)
                continue
            # lab/up.yml's options: systemd as PID 1 without --privileged.
            docker("run", "-d", "--name", name, "--hostname", name, "--network", NETWORK, "--label", LABEL,
                   "--cap-add", "SYS_ADMIN", "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                   "--tmpfs", "/run", "--tmpfs", "/run/lock", "-e", "container=docker", IMAGE, "/lib/systemd/systemd")
            self.created.append(name)
        with open(self.inventory, "w") as handle:
            handle.write("all:\n  children:\n    lift_db:\n      hosts:\n")
            for name in self.names:
                handle.write("        %s: {}\n" % name)
            handle.write("      vars:\n        ansible_connection: community.docker.docker\n"
                         "        ansible_python_interpreter: /usr/bin/python3\n")
        for name in self.names:
            self.wait_booted(name)

    def wait_booted(self, name, timeout=180):
        deadline = time.monotonic() + timeout
        while True:
            state = docker("exec", name, "timeout", "5", "systemctl", "is-system-running", "--wait",
                           check=False).stdout.strip()
            if state in ("running", "degraded"):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("%s: systemd did not finish booting in %d s (%s)" % (name, timeout, state))
            time.sleep(1)

    def playbook(self, playbook, limit=None, forks=None, extra=None, json_output=False):
        argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", self.inventory, os.path.join(ROOT, playbook)]
        if limit:
            argv += ["--limit", ",".join(limit)]
        if forks:
            argv += ["--forks", str(forks)]
        for key, value in (extra or {}).items():
            argv += ["-e", "%s=%s" % (key, value)]
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "lab", "ansible.cfg"),
                   ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".cache", "collections"),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        if json_output:
            env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
        started = time.monotonic()
        proc = subprocess.run(argv, env=env, cwd=self.work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, stdin=subprocess.DEVNULL, check=False)
        wall = time.monotonic() - started
        if proc.returncode != 0:
            raise RuntimeError("%s failed (rc %d):\n%s\n%s" % (playbook, proc.returncode, proc.stdout[-4000:],
                                                               proc.stderr[-2000:]))
        return proc, wall

    def provision(self, size_mb):
        log("provisioning %d hosts (lab/prepare.yml, %s MB each)" % (len(self.names), size_mb))
        _proc, wall = self.playbook("lab/prepare.yml", forks=len(self.names), extra={"lab_fixture_size_mb": size_mb})
        log("provisioned in %.0f s" % wall)
        return wall

    def backup(self, count, forks):
        limit = self.names[:count]
        proc, wall = self.playbook("playbooks/backup.yml", limit=limit, forks=forks, json_output=True)
        data = json.loads(proc.stdout)
        per_host = {}
        span = None
        tasks = {}
        for play in data["plays"]:
            for task in play["tasks"]:
                duration = task["task"]["duration"]
                seconds = parse_time(duration["end"]) - parse_time(duration["start"])
                # Where the wall time goes: each task's span (first host's start to last host's end),
                # summed by name (the included role's tasks run once per directory).
                tasks[task["task"]["name"]] = tasks.get(task["task"]["name"], 0.0) + seconds
                if task["task"]["name"] != "Take the backup":
                    continue
                span = seconds
                for host, result in task["hosts"].items():
                    per_host[host] = result["duration_s"]
        if sorted(per_host) != sorted(limit):
            raise RuntimeError("backups ran on %s, expected %s" % (sorted(per_host), limit))
        return {"wall_s": wall, "backup_task_s": span, "module_s": per_host, "task_spans_s": tasks}

    def cleanup(self, keep=False):
        if keep:
            log("keeping the containers %s (--keep)" % ", ".join(self.names))
            return
        for name in self.created + ([] if not self.reuse else [n for n in self.names if n not in self.created]):
            docker("rm", "-f", "-v", name, check=False)
        if self.created_network:
            docker("network", "rm", NETWORK, check=False)


def parse_time(text):
    return datetime.datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def median(values):
    return statistics.median(values) if values else None


def summarize(runs):
    rows = []
    base = None
    for count in sorted(runs):
        samples = runs[count]
        module = [s for run in samples for s in run["module_s"].values()]
        row = {"hosts": count, "wall_s": median([r["wall_s"] for r in samples]),
               "backup_task_s": median([r["backup_task_s"] for r in samples]),
               "module_median_s": median(module), "module_max_s": max(module), "runs": samples,
               "task_spans_median_s": {name: median([r["task_spans_s"].get(name, 0.0) for r in samples])
                                       for name in samples[0]["task_spans_s"]}}
        if base is None:
            base = row["wall_s"]
        row["wall_ratio"] = row["wall_s"] / base
        row["wall_per_host_s"] = row["wall_s"] / count
        rows.append(row)
    return rows


def loadavg(values):
    return "/".join("%.1f" % v for v in values) if values else "?"


def markdown(report):
    lines = ["# Fleet backup %s" % report["date"], "",
             "One `ansible-playbook playbooks/backup.yml` over N lab containers (%s, docker connection, forks %d), "
             "each with a %s MB lift_simulator sample database; median of %d runs. Machine: %s, %d cores; "
             "load average (1, 5, 15 min) %s at the start, %s at the end."
             % (IMAGE, report["forks"], report["size_mb"], report["repeat"], report["machine"], report["cores"],
                loadavg(report.get("load_average_start")), loadavg(report.get("load_average_end"))), "",
             "| hosts | wall time | / 1 host | wall per host | backup task span | module duration_s per host "
             "(median / max) |", "|---|---|---|---|---|---|"]
    for row in report["rows"]:
        lines.append("| %d | %.1f s | %.2f | %.2f s | %.1f s | %.2f s / %.2f s |" % (
            row["hosts"], row["wall_s"], row["wall_ratio"], row["wall_per_host_s"], row["backup_task_s"],
            row["module_median_s"], row["module_max_s"]))
    last = report["rows"][-1]
    lines += ["", "Where the wall time goes with %d hosts (each task's span from the first host's start to the last "
              "host's end, median; the rest is ansible-playbook's start-up, inventory and play setup):" % last["hosts"],
              "", "| task | span |", "|---|---|"]
    for name, seconds in sorted(last["task_spans_median_s"].items(), key=lambda item: -item[1]):
        lines.append("| %s | %.1f s |" % (name, seconds))
    lines.append("| (outside the tasks) | %.1f s |" % (last["wall_s"] - sum(last["task_spans_median_s"].values())))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1,2,4,8", help="numbers of hosts per run (default 1,2,4,8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per count (median; default 3)")
    parser.add_argument("--size-mb", default="5", help="sample database size per host (default 5 MB)")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"), help="where results go")
    parser.add_argument("--keep", action="store_true", help="keep the containers afterwards")
    parser.add_argument("--reuse", action="store_true",
                        help="use existing lift-bench-fleet-<i> containers (kept by --keep); removed at the end")
    args = parser.parse_args(argv)
    # A TERM (timeout, CI cancel) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    counts = sorted({int(c) for c in args.counts.split(",") if c})
    hosts = max(counts)
    os.makedirs(args.out, exist_ok=True)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    work = tempfile.mkdtemp(prefix="lift-bench-fleet-")
    fleet = Fleet(hosts, work, reuse=args.reuse)
    report = {"date": date, "machine": platform.platform(), "cores": os.cpu_count(), "repeat": args.repeat,
              "size_mb": args.size_mb, "forks": hosts, "image": IMAGE}
    # Other jobs on the machine skew every figure: the load average before and after says how much.
    report["load_average_start"] = os.getloadavg()
    try:
        log("starting %d containers" % hosts)
        started = time.monotonic()
        fleet.start()
        report["start_s"] = time.monotonic() - started
        report["provision_s"] = fleet.provision(args.size_mb)
        fleet.backup(hosts, hosts)  # warm-up: the first backup creates each host's directories
        runs = {count: [] for count in counts}
        for i in range(args.repeat):
            order = counts if i % 2 == 0 else list(reversed(counts))
            for count in order:
                run = fleet.backup(count, hosts)
                runs[count].append(run)
                log("  %d hosts: wall %.1f s, backup task %.1f s, module max %.2f s"
                    % (count, run["wall_s"], run["backup_task_s"], max(run["module_s"].values())))
        report["rows"] = summarize(runs)
        report["load_average_end"] = os.getloadavg()
    finally:
        fleet.cleanup(args.keep)
        shutil.rmtree(work, ignore_errors=True)
    base = os.path.join(args.out, date + "-fleet")
    with open(base + ".json", "w") as handle:
        json.dump(report, handle, indent=2, sort_keys=True)
    table = markdown(report)
    with open(base + ".md", "w") as handle:
        handle.write(table)
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
