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
  ssl_cert:
    description:
      - File of the client certificate (libpq C(sslcert)), for servers that authenticate clients by
        certificate (C(pg_hba.conf) method C(cert), or C(clientcert=verify-full)).
      - The module and the client programs it runs (C(pg_dump), C(psql), C(pg_restore)) all use it.
    type: path
    version_added: 0.2.0
  ssl_key:
    description:
      - File of the client certificate's private key (libpq C(sslkey)). libpq refuses a key file that
        others can read (keep it 0600, owned by the user the module runs as).
    type: path
    version_added: 0.2.0
  connect_params:
    description:
      - More libpq connection parameters, as a dictionary, for the module's own connection and the
        client programs' alike (for example C(target_session_attrs), C(sslcrl), C(sslsni),
        C(ssl_min_protocol_version), C(channel_binding), C(gssencmode), C(require_auth)).
      - Only parameters that the client programs take from the environment, and that no other
        option sets, are accepted; any other name (C(password), C(host), C(options)...) is refused
        with the list of accepted ones. No secret belongs here.
    type: dict
    version_added: 0.2.0
    default: {}
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
