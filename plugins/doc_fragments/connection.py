# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options shared by every module of this collection. Their names and PG*
    # environment fallbacks follow community.postgresql.
    DOCUMENTATION = r"""
options:
  login_user:
    description:
      - The PostgreSQL role to connect as.
      - Falls back to the E(PGUSER) environment variable of the database host, then to V(postgres).
      - With peer authentication over the local socket the module must run as the OS user of the
        same name (for example C(become_user=postgres)).
    type: str
    default: postgres
  login_password:
    description:
      - The password of O(login_user). Falls back to E(PGPASSWORD).
      - Never written to argv, logs, results or manifests. The PostgreSQL client programs receive
        it through a temporary passfile (mode 0600, in a private directory, removed afterwards).
      - Leave empty for peer or trust authentication, or to let libpq read the OS user's C(~/.pgpass).
    type: str
    default: ''
  login_host:
    description:
      - Host name or address of the server (TCP). Falls back to E(PGHOST).
      - Empty means the local Unix socket.
    type: str
    default: ''
  login_unix_socket:
    description:
      - Directory of the server's Unix socket, for local connections to a non-default socket
        directory.
      - Mutually exclusive with O(login_host).
    type: path
    default: ''
  login_port:
    description:
      - Server port (also selects the Unix socket file). Falls back to E(PGPORT).
    type: int
    default: 5432
    aliases: [ port ]
  ssl_mode:
    description:
      - Whether or with what priority an SSL connection is negotiated; see the libpq documentation.
    type: str
    default: prefer
    choices: [ allow, disable, prefer, require, verify-ca, verify-full ]
  ca_cert:
    description:
      - File of CA certificates the server certificate must be signed by (libpq C(sslrootcert)).
    type: path
    aliases: [ ssl_rootcert ]
  connect_timeout:
    description:
      - Seconds to wait for a connection before failing.
    type: int
    default: 10
requirements:
  - psycopg2 >= 2.8 on the database host (Debian package C(python3-psycopg2))
  - the PostgreSQL client programs on the database host, of the server's major version or newer
notes:
  - These modules run on the database host. Error messages name the problem (server down,
    authentication failed, database missing, client programs missing or too old) and never
    contain the password.
"""
