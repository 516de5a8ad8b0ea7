#!/usr/bin/python3
"""Asks the installed SELinux policy, offline, whether a process label may access a file label.

Reads JSON queries, one per line: ["scontext", "tcontext", "class", ["perm", ...]].
Prints one line per query: "allow" or "deny <reason>". Uses python3-selinux's
audit2why, which evaluates the real binary policy, MCS constraints included.
"""
import glob
import json
import sys

import selinux.audit2why as audit2why

REASONS = {
    audit2why.ALLOW: "allow",
    audit2why.DONTAUDIT: "dontaudit",
    audit2why.TERULE: "terule",
    audit2why.BOOLEAN: "boolean",
    audit2why.CONSTRAINT: "constraint",
    audit2why.RBAC: "rbac",
}


def main():
    policies = sorted(glob.glob("/etc/selinux/default/policy/policy.*"))
    if not policies:
        sys.exit("no binary policy under /etc/selinux/default/policy")
    audit2why.init(policies[-1])
    for line in sys.stdin:
        scon, tcon, tclass, perms = json.loads(line)
        code, _ = audit2why.analyze(scon, tcon, tclass, perms)
        if code == audit2why.ALLOW:
            print("allow", flush=True)
        else:
            print("deny", REASONS.get(code, str(code)), flush=True)
    audit2why.finish()


if __name__ == "__main__":
    main()
