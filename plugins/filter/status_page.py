# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The status_page_html filter (documented in status_page_html.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.report import fleet, html_page


def status_page_html(entries, title="Backups of the fleet"):
    if not isinstance(entries, list):
        raise AnsibleFilterError("status_page_html needs a list of entries (host, info, ...)")
    return html_page.render(fleet.fleet_page([dict(e) for e in entries if isinstance(e, dict)], title=title))


class FilterModule(object):
    def filters(self):
        return {"status_page_html": status_page_html}
