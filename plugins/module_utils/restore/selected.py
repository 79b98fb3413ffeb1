# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Selective restore (``tables``): the data of chosen tables restored into the existing database,
in one transaction, as the loading role.

The backup's data is opened as dump text (backup_load.DumpText: the file itself, a
decompressor's output, or ``pg_restore --data-only`` for an archive) and given to
table_restore.py, which loads it; the transaction commits only after the program that wrote the
text ended without error. Any failure changes nothing. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.artifact import plain_dump
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import connection as pg_connection
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg.connection import (
    DatabaseError, quote_for_message)
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import backup_load
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore import table_restore
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.loader import Loader
from ansible_collections.lift_simulator.postgresql.plugins.module_utils.restore.request import (
    RestoreError, finish, lock_timeout_message)


def restore_selected(request, backup, admin, major, live, result, check_mode, started):
    """Restore the data of ``request.tables`` into the live database ``live``; returns the result."""
    db = request.database
    if live is None:
        raise RestoreError("database %s does not exist; a selective restore loads tables into an existing "
                           "database" % quote_for_message(db))
    result.update(strategy="tables", changed=True)
    backup_tables = sorted(backup.expected_rows) if backup.expected_rows is not None else None
    if check_mode:
        result["msg"] = "would %srestore the data of %s into %s in one transaction" % (
            "truncate and " if request.truncate else "", ", ".join(request.tables), db)
        return finish(result, started)
    load = Loader(request, admin, request.owner)
    try:
        text = backup_load.DumpText(backup, request.bin_dir, major, data_only=True, identity=request.identity)
        try:
            conn = pg_connection.connect(load.params(db), autocommit=False)
            try:
                result["row_counts"] = table_restore.restore_tables(
                    conn, text.stream, request.tables, request.truncate, backup_tables, request.lock_timeout,
                    before_commit=text.close)
            finally:
                conn.close()
        except (table_restore.TableRestoreError, backup_load.LoadError) as exc:
            text.kill()
            raise RestoreError("%s; nothing was changed" % exc)
        except plain_dump.PlainDumpError as exc:
            text.kill()
            raise RestoreError("the backup was refused, it holds what pg_dump never writes (nothing of it ran): %s; "
                               "nothing was changed" % exc)
        except DatabaseError as exc:
            text.kill()
            locked = lock_timeout_message(exc, request.lock_timeout)
            if locked is not None:
                raise RestoreError("%s; nothing was changed" % locked)
            raise RestoreError("restoring the tables failed, nothing was changed: %s"
                               % str(exc).strip().replace("\n", " "))
        except BaseException:
            text.kill()
            raise
        finally:
            text.close()
        load.drop_role()
    except BaseException:
        load.drop_role_quietly()
        raise
    return finish(result, started)
