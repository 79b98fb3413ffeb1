# -*- coding: utf-8 -*-
"""molecule pitr: the writer. Commits one numbered row every 100 ms (lab_writer.tick(n): the row in
lab_writer.ticks_log and, while it exists, in lab_writer.ticks) and appends "n epoch" to its journal
once the commit has returned: the journal lists every row the database acknowledged. The journal is
on a directory the controller mounted into the container, so it survives the machine being killed.
A failed commit (the table dropped, the server restarting at a switch) is not journaled; the writer
reconnects and carries on with the next number."""
import os
import sys
import time

import psycopg2

JOURNAL = sys.argv[1] if len(sys.argv) > 1 else "/var/lib/lift-pitr-writer/journal"
INTERVAL = 0.1


def main():
    n = 0
    if os.path.exists(JOURNAL):
        with open(JOURNAL) as handle:
            for line in handle:
                n = max(n, int(line.split()[0]))
    conn = None
    journal = open(JOURNAL, "a")
    next_at = time.monotonic()
    while True:
        n += 1
        try:
            if conn is None:
                conn = psycopg2.connect(dbname="lift_simulator", connect_timeout=2)
            with conn.cursor() as cur:
                cur.execute("SELECT lab_writer.tick(%s)", (n,))
            conn.commit()
            journal.write("%d %.6f\n" % (n, time.time()))
            journal.flush()
        except psycopg2.Error as exc:
            sys.stderr.write("tick %d: %s\n" % (n, str(exc).strip().splitlines()[0] if str(exc).strip() else exc))
            try:
                conn.close()
            except Exception:
                pass
            conn = None
        next_at += INTERVAL
        time.sleep(max(0.0, next_at - time.monotonic()))
        if next_at < time.monotonic() - 1:
            next_at = time.monotonic()


if __name__ == "__main__":
    main()
