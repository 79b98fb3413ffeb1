# -*- coding: utf-8 -*-
"""A lift_simulator database of another shape than the fixture's (tests/fixtures/lift_simulator):
many lift systems (about 85 per MB of data, at most --max-systems), 2 to 10 versions each, and
larger JSON configurations (every floor with its zone and peak call counts, every car with its
maintenance notes: about 1 to 6 kB of JSON per version, 2.6 kB on average, TOASTed when large),
few scenarios (with long passenger flow lists) and few simulation runs: at 100 MB about 8,700
systems and 52,000 versions, where the fixture has 60 systems and 250 versions. The fixture's database, by contrast, is mostly simulation_run
rows with small JSON. Same tables as schema.sql, so the backup's restore checklist applies (one
published version per system at most, as the schema requires).

Writes SQL (COPY blocks) to stdout, deterministic for (--size-mb, --seed):

    python3 tests/lib/wide_fixture.py --size-mb 20 | psql -X -q -v ON_ERROR_STOP=1 -d wide

or from Python: ``load(cluster, database, size_mb, seed)`` (a pglab.PgCluster; creates the database
owned by lift_admin with schema.sql, like pglab.load_fixture). Standard library only.
"""
from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# Calibrated on PostgreSQL 15 (pg_database_size after load + ANALYZE, less an empty database).
BYTES_PER_SYSTEM = 12000
ZONES = ["lobby", "retail", "office", "residential", "plant", "car-park", "restaurant", "clinic", "hotel"]
NOTES = ["door rollers", "ropes inspected", "brake test", "controller firmware", "landing buttons"]
STATUSES = ["SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "FAILED", "CANCELLED"]
_ESC = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def esc(text):
    return "\\N" if text is None else text.translate(_ESC)


def ts(day, second):
    return "2026-%02d-%02d %02d:%02d:%02d+00" % (1 + day // 28 % 12, 1 + day % 28, second // 3600 % 24,
                                                 second // 60 % 60, second % 60)


def building(rng):
    floors = rng.choice([4, 5, 6, 8, 10, 12, 16, 20, 25])
    low = -rng.choice([0, 0, 1, 2, 3])
    lifts = max(1, min(12, floors // 5 + rng.randint(0, 2)))
    return low, low + floors - 1, lifts


def floors_map(rng, shape):
    """The per-floor part of a system's configuration (versions edit the rest)."""
    low, high, _lifts = shape
    return [{"floor": f, "name": "Level %d" % f, "zone": rng.choice(ZONES), "served": rng.random() > 0.05,
             "peakCalls": [rng.randint(0, 60), rng.randint(0, 40), rng.randint(0, 60), rng.randint(0, 5)]}
            for f in range(low, high + 1)]


def config(rng, shape, floors, version):
    low, high, lifts = shape
    return {
        "minFloor": low, "maxFloor": high, "lifts": lifts, "revision": version,
        "controllerStrategy": rng.choice(["NEAREST_REQUEST_ROUTING", "DIRECTIONAL_SCAN", "DESTINATION_DISPATCH"]),
        "doorDwellTicks": rng.randint(2, 6), "floors": floors,
        "cars": [{"id": c + 1, "capacityKg": rng.choice([630, 800, 1000, 1275, 1600, 2000]),
                  "maintenance": [{"month": 1 + (m * 5 + version) % 12, "note": rng.choice(NOTES)}
                                  for m in range(rng.randint(0, 3))]}
                 for c in range(lifts)],
    }


def generate(size_mb, seed, out, max_systems=200000):
    rng = random.Random(seed)
    systems = max(20, min(max_systems, int(size_mb * 1024 * 1024 / BYTES_PER_SYSTEM)))
    write = out.write
    write("SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\nBEGIN;\n")
    write("COPY lift_simulator.lift_system (id, system_key, display_name, description, created_at, updated_at) "
          "FROM stdin;\n")
    for sid in range(1, systems + 1):
        write("%d\tsite-%06d-bank-%d\tSite %06d bank %d\t%s\t%s\t%s\n" % (
            sid, sid // 4, sid % 4, sid // 4, sid % 4, esc(None if sid % 3 else "Wide fixture system %d" % sid),
            ts(sid % 300, sid % 86400), ts(sid % 300 + 5, sid % 86400)))
    write("\\.\n")
    # Versions, then scenarios and runs from the published ones (kept: id, system, floor range).
    published = []
    write("COPY lift_simulator.lift_system_version (id, lift_system_id, version_number, status, is_published, "
          "published_at, config, created_at, updated_at, lock_version) FROM stdin;\n")
    vid = 0
    for sid in range(1, systems + 1):
        shape = building(rng)
        floors = floors_map(rng, shape)
        count = rng.randint(2, 10)
        draft = rng.random() < 0.2
        for number in range(1, count + 1):
            vid += 1
            last = number == count
            status = "DRAFT" if last and draft else "PUBLISHED" if last or (draft and number == count - 1) \
                else "ARCHIVED"
            is_pub = status == "PUBLISHED"
            day = (sid + number * 3) % 300
            write("%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n" % (
                vid, sid, number, status, "t" if is_pub else "f", ts(day, 3600) if is_pub or status == "ARCHIVED"
                else "\\N", esc(json.dumps(config(rng, shape, floors, number), separators=(",", ":"))),
                ts(day, 0), ts(day, 7200), number % 4))
            if is_pub:
                published.append((vid, sid, shape))
    write("\\.\n")
    write("COPY lift_simulator.scenario (id, scenario_json, created_at, updated_at, name, lift_system_version_id) "
          "FROM stdin;\n")
    scenarios = []
    scid = 0
    for vid, sid, shape in published:
        if rng.random() > 0.3:
            continue
        scid += 1
        low, high, _lifts = shape
        flows = [{"startTick": t * 5, "passengers": rng.randint(1, 8), "originFloor": rng.randint(low, high),
                  "destinationFloor": rng.randint(low, high)} for t in range(rng.randint(50, 400))]
        payload = {"durationTicks": len(flows) * 5 + 100, "passengerFlows": flows, "seed": rng.randint(1, 2 ** 31)}
        write("%d\t%s\t%s\t%s\tWide scenario %d\t%d\n" % (scid, esc(json.dumps(payload, separators=(",", ":"))),
                                                          ts(sid % 300, 100), ts(sid % 300, 200), scid, vid))
        scenarios.append((scid, vid, sid))
    write("\\.\n")
    write("COPY lift_simulator.simulation_run (id, lift_system_id, version_id, status, created_at, started_at, "
          "ended_at, total_ticks, current_tick, seed, error_message, artefact_base_path, scenario_id, lock_version) "
          "FROM stdin;\n")
    rid = 0
    for scid, vid, sid in scenarios:
        for _r in range(rng.randint(1, 4)):
            rid += 1
            status = rng.choice(STATUSES)
            write("%d\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\trun-artefacts/run-%d\t%d\t2\n" % (
                rid, sid, vid, status, ts(sid % 300, 300), ts(sid % 300, 301), ts(sid % 300, 400), 1000, 1000,
                rng.randint(-2 ** 63, 2 ** 63 - 1), esc("Simulation failed at tick %d" % rid if status == "FAILED"
                                                        else None), rid, scid))
    write("\\.\n")
    for table, last in (("lift_system", systems), ("lift_system_version", vid), ("scenario", scid),
                        ("simulation_run", rid)):
        write("SELECT pg_catalog.setval('lift_simulator.%s_id_seq', %d, %s);\n"
              % (table, max(last, 1), "true" if last else "false"))
    write("COMMIT;\nANALYZE;\n")
    return {"lift_system": systems, "lift_system_version": vid, "scenario": scid, "simulation_run": rid}


def load(cluster, database, size_mb, seed=42):
    """Create ``database`` (owner lift_admin) with the fixture's schema and this shape of data."""
    cluster.psql("CREATE DATABASE %s OWNER lift_admin" % database)
    cluster.psql("REVOKE ALL ON DATABASE %s FROM PUBLIC; GRANT ALL PRIVILEGES ON DATABASE %s TO lift_admin"
                 % (database, database))
    fixture = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "fixtures", "lift_simulator")
    cluster.psql_file(os.path.join(fixture, "schema.sql"), database)
    gen = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--size-mb", str(size_mb), "--seed", str(seed)],
                           stdout=subprocess.PIPE)
    cluster.psql_file("-", database, stdin=gen.stdout)
    gen.stdout.close()
    if gen.wait() != 0:
        raise RuntimeError("wide_fixture.py failed")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=20.0, help="approximate data size in MiB (default 20)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-systems", type=int, default=200000)
    parser.add_argument("--stats", action="store_true", help="rows per table to stderr")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(encoding="utf-8", newline="\n")
    counts = generate(args.size_mb, args.seed, sys.stdout, args.max_systems)
    sys.stdout.flush()
    if args.stats:
        sys.stderr.write("".join("lift_simulator.%s\t%d\n" % item for item in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
