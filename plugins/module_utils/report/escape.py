# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Text for the status page's HTML and SVG: every value is escaped (names come from backup files,
manifests and remote stores, which are not trusted), control characters shown as U+FFFD. Pure Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import html
import re

_CONTROL_RE = re.compile(u"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def esc(value):
    """``value`` as text safe inside an element or a quoted attribute; None as an empty string."""
    if value is None:
        return ""
    return html.escape(_CONTROL_RE.sub(u"\ufffd", u"%s" % (value,)), quote=True)
