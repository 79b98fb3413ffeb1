"""Stand-in for the lift-simulator application in the molecule `restore` scenario.

Keeps one session on lift_simulator and logs, every 0.2 s, its backend pid and how many
'marker' systems it sees. An error line means the database went away under it: with the
application stopped around the swap (playbooks/restore.yml) there must be none.
"""
import datetime
import time

import psycopg2

LOG = "/var/log/lift-standin/standin.log"


def main():
    conn = None
    with open(LOG, "a", buffering=1) as log:
        log.write("%s started\n" % datetime.datetime.now().isoformat())
        while True:
            try:
                if conn is None:
                    conn = psycopg2.connect(dbname="lift_simulator")
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_backend_pid(), count(*) FROM lift_simulator.lift_system "
                                "WHERE system_key = 'marker'")
                    pid, markers = cur.fetchone()
                log.write("%s ok pid=%d marker=%d\n" % (datetime.datetime.now().isoformat(), pid, markers))
            except psycopg2.Error as exc:
                conn = None
                log.write("%s error %s\n" % (datetime.datetime.now().isoformat(), str(exc).strip().splitlines()[0]))
            time.sleep(0.2)


if __name__ == "__main__":
    main()
