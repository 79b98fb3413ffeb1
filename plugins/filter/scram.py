# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scram_verifier filter (documented in scram_verifier.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.pg import scram


def scram_verifier(password, stored=None):
    if not isinstance(password, str) or not password:
        raise AnsibleFilterError("scram_verifier needs a non-empty password string")
    return scram.for_password(password, stored or None)


class FilterModule(object):
    def filters(self):
        return {"scram_verifier": scram_verifier}
