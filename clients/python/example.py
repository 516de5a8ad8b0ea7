#!/usr/bin/env python3
"""A minimal pool picker: pools with their space, volumes with capacity, allocation,
format and the guests using them; optionally import an ISO into a pool first.

    python3 clients/python/example.py                      # list
    python3 clients/python/example.py ~/debian.iso default # import, then list
"""
import sys

import svirtpool

with svirtpool.Client() as c:
    if len(sys.argv) == 3:
        result = c.import_file(sys.argv[1], pool=sys.argv[2])
        print("imported", result["volume"], "labeled", result["label"])
    size = lambda n: "-" if n is None else "%.1f GiB" % (n / 2**30)
    for pool in c.list_pools():
        print("pool %s (%s, %s): %d volumes, %s free of %s" % (
            pool["name"], pool["kind"], pool["location"], pool["volumes"],
            size(pool["free"]), size(pool["capacity"])))
        print("  %-40s %10s %10s %-6s %s" % ("name", "capacity", "allocation", "format", "used by"))
        for page in c.volume_pages(pool["name"], limit=100):
            for v in page:
                print("  %-40s %10s %10s %-6s %s" % (
                    v["name"], size(v["capacity"]), size(v["allocation"]),
                    v["format"] or "-", ", ".join(v["used_by"])))
