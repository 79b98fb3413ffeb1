# -*- coding: utf-8 -*-
# Copyright: contributors to lift_simulator.postgresql
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dropping to the job's OS user: started as root, the job becomes that user for good (uid,
gid, groups, HOME) before it reads or writes anything of the run. Pure Python (no Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd

from ansible_collections.lift_simulator.postgresql.plugins.module_utils.job.settings import ConfigError


def switch_user(user):
    """Started as root with a job user: become that user (uid, gid, groups, HOME) for good."""
    if not user or os.geteuid() != 0 or user == "root":
        if user and os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != user:
            raise ConfigError("this job runs as the OS user %s: run it as %s (or as root, which switches to it)"
                              % (user, user))
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError("the job's OS user %s does not exist" % user)
    os.initgroups(user, entry.pw_gid)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)
    os.chdir(entry.pw_dir if os.path.isdir(entry.pw_dir) else "/")


def current_user():
    """The name of the user the job runs as (for the log)."""
    return pwd.getpwuid(os.geteuid()).pw_name
