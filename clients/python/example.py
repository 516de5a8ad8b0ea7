#!/usr/bin/env python3
"""List svirt-pool's pools and volumes, and import an ISO into a pool.

    python3 clients/python/example.py                      # list
    python3 clients/python/example.py ~/debian.iso default # import, then list
"""
import sys

import svirtpool

with svirtpool.Client() as c:
    if len(sys.argv) == 3:
        result = c.import_file(sys.argv[1], pool=sys.argv[2])
        print("imported", result["volume"], "labeled", result["label"])
    for pool in c.list_pools():
        print("pool %(name)s (%(kind)s, %(location)s): %(volumes)d volumes" % pool)
        for v in c.list_volumes(pool["name"]):
            print("  %-40s %-6s %-24s %s" % (v["name"], v["format"] or "-", v["state"], v["current_label"]))
