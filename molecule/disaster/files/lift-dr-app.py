"""Stand-in for the lift-simulator application on the recovered machines (molecule `disaster`).

Logs in as lift_admin over TCP, as the application does, and logs every second how many lift
systems it sees (or the error). Its password comes from the unit's environment file.
"""
import datetime
import os
import time

import psycopg2

LOG = "/var/log/lift-dr-app/app.log"


def main():
    with open(LOG, "a", buffering=1) as log:
        log.write("%s started\n" % datetime.datetime.now().isoformat())
        while True:
            try:
                conn = psycopg2.connect(host="127.0.0.1", dbname="lift_simulator", user="lift_admin",
                                        password=os.environ["LIFT_DB_PASSWORD"])
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT count(*) FROM lift_simulator.lift_system")
                        systems = cur.fetchone()[0]
                finally:
                    conn.close()
                log.write("%s ok systems=%d\n" % (datetime.datetime.now().isoformat(), systems))
            except psycopg2.Error as exc:
                log.write("%s error %s\n" % (datetime.datetime.now().isoformat(), str(exc).strip().splitlines()[0]))
            time.sleep(1)


if __name__ == "__main__":
    main()
