# -*- coding: utf-8 -*-
"""A tiny run of the benchmark harness (make bench runs the real one): it must produce its report."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

from pglab import ROOT


def test_benchmark_harness_smoke_run(tmp_path):
    out = str(tmp_path / "results")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench.py"), "--sizes", "3", "--repeat", "1",
                           "--checklist-systems", "300",
                           "--out", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [f for f in os.listdir(out) if f.endswith(".json")]
    assert len(reports) == 1
    with open(os.path.join(out, reports[0])) as handle:
        report = json.load(handle)
    (size,) = report["sizes"]
    for key in ("bare_pg_dump_plain", "module_plain", "module_plain_zstd", "module_custom", "strategy_restore",
                "module_swap", "bare_psql", "quick_verify", "restore_verify"):
        assert size["medians_s"][key] > 0, key
    assert 0 < size["ratios"]["swap_downtime_s"] < 1
    # The additions of issue 18: the fixed-cost row, pgBackRest beside, a wide database, the
    # module's own phases, the checklist's cost (digests: the same size whatever the systems).
    assert report["tiny"]["medians_s"]["module_plain"] > 0
    assert size["pgbackrest"]["backup_s"] > 0 and size["pgbackrest"]["restore_total_s"] > 0
    assert report["wide"][0]["medians_s"]["module_plain"] > 0
    assert set(size["timings"]["plain_none"][0]) >= {"dump", "connect", "manifest"}
    (checklist,) = report["checklist"]
    assert checklist["systems"] == 300 and checklist["bytes"] < 1000 < checklist["old_bytes"]
    assert "| target | bound |" in proc.stdout
