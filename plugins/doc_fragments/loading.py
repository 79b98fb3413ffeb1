# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How a backup is loaded into a database (restore, verify level restore).
    DOCUMENTATION = r"""
options:
  load_as:
    description:
      - Who loads the backup and runs every check that reads restored content.
      - V(owner) (default) is a transient role, C(lift_simulator_restore_<random>), made for the run and
        dropped after it - no superuser, no CREATEDB, no CREATEROLE, a member of O(owner) and nothing
        else. Whatever the backup holds, and whatever the database owner planted (triggers, CHECK
        functions, defaults, views), runs with the owner's rights and no more; a staging or scratch
        database accepts no other connection while it loads. The role logs in with a random password
        at O(load_host), so C(pg_hba.conf) must allow password logins there (Debian's default does for
        127.0.0.1). Its password is stored as a SCRAM verifier and never reaches a log.
      - The objects are loaded without the dump's ownership statements (as C(pg_restore --no-owner) does),
        and then all of them are given to O(owner), so a backup whose objects belonged to several roles
        restores without a superuser too.
      - V(superuser) loads as the login role itself. Only for dumps that truly need a superuser (extensions
        that are not trusted, event triggers). Code in such a backup, and the owner's, then runs with
        superuser rights, so use it only for backups and databases you trust completely.
    type: str
    choices: [ owner, superuser ]
    default: owner
  load_host:
    description:
      - Host name, or socket directory (a path starting with C(/)), where the transient loading role
        connects; the port is O(login_port). Default O(login_host) when set, else C(127.0.0.1).
    type: str
  privileges:
    description:
      - V(keep) restores the backup's GRANT and REVOKE statements.
      - V(skip) leaves them out (C(pg_restore --no-privileges); in a plain dump, the entries of type ACL and
        DEFAULT ACL), for a target where the roles the backup grants to (for example a read-only backup
        role) do not exist or should not get rights there.
    type: str
    choices: [ keep, skip ]
    default: keep
  lock_timeout:
    description:
      - Seconds any statement of the run may wait for a lock held by another session (a table the
        application has locked, a database being renamed) before it fails with an error that says so.
    type: int
    default: 60
  stall_timeout:
    description:
      - Seconds C(psql) or C(pg_restore) may go without any progress (neither it nor its workers read
        or write, and none of its server sessions is working) before it is stopped and the run fails
        with an error that says so, leaving the live database untouched; for a stopped (SIGSTOP) or
        hung client. V(0) never stops it.
    type: int
    default: 300
"""
