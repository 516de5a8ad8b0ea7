#!/usr/bin/env python3
"""What a user of a pool directory does while the agent labels files in it, run by
tests/unsealed_dirs.rs as that user (setpriv). Prints one JSON object.

    name_race.py squat DIR NAME SECONDS
        Tries, for SECONDS, to create NAME in DIR exclusively (O_CREAT|O_EXCL): it
        succeeds only at an instant the name is free. Prints {"tries": N, "won": N}.

    name_race.py rename DIR COUNT GAP_US...
        For each gap, COUNT times: writes "tmp-GAP", waits GAP_US microseconds (busy),
        renames it to "f-GAP-I.img" -- what rsync, cp + mv and qemu-img convert + mv do.
        Prints {"renames": N, "failed": {"GAP": N, ...}, "errors": [first few]}.
"""
import errno
import json
import os
import sys
import time


def squat(directory, name, seconds):
    path = os.path.join(directory, name)
    tries = won = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        tries += 1
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise
            continue
        # The name was free: the victim's file was away from it.
        won += 1
        os.close(fd)
        os.unlink(path)
    print(json.dumps({"tries": tries, "won": won}))


def rename(directory, count, gaps):
    failed = {}
    errors = []
    renames = 0
    for gap in gaps:
        failed[str(gap)] = 0
        tmp = os.path.join(directory, f"tmp-{gap}")
        for i in range(count):
            with open(tmp, "wb") as f:
                f.write(b"image")
            until = time.perf_counter() + gap / 1e6
            while time.perf_counter() < until:
                pass
            renames += 1
            try:
                os.rename(tmp, os.path.join(directory, f"f-{gap}-{i}.img"))
            except OSError as e:
                failed[str(gap)] += 1
                if len(errors) < 5:
                    errors.append(f"gap {gap} us, round {i}: {e}")
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
    print(json.dumps({"renames": renames, "failed": failed, "errors": errors}))


def main():
    what = sys.argv[1]
    if what == "squat":
        squat(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif what == "rename":
        rename(sys.argv[2], int(sys.argv[3]), [int(g) for g in sys.argv[4:]])
    else:
        sys.exit(f"name_race.py: unknown command {what}")


if __name__ == "__main__":
    main()
