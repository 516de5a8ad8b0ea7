#!/usr/bin/env python3
"""Crash consistency: SIGKILL the agent at random moments, restart it, check nothing is lost.

Each round starts the agent and kills it (SIGKILL) at a random moment during one of:
  scan    the initial scan of a pool whose labels were all made wrong;
  storm   attach/detach storms through the API (4 threads) and the CLI (2 processes);
  burst   files created in a burst by two writers.
After each kill the agent is started again (READY=1 means its first scan is done) and:
  - every volume's label is the desired one (`status --json`: no drift);
  - no two guests share an MCS pair;
  - every attach or detach that was acknowledged before the kill is in the state
    (volumes with a call in flight at the kill are allowed either outcome);
  - SQLite's `PRAGMA integrity_check` answers ok.

    scripts/reliability/crash.py [--kills 50] [--files 100000] [--binary target/release/svirt-pool]

Needs root, the refpolicy, and a release build. Prints one line per round and a summary;
exits 1 if any check failed.
"""
import argparse
import collections
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
sys.path.insert(0, os.path.join(HERE, ".."))
import svirtpool  # noqa: E402
from agentproc import Agent  # noqa: E402

IMAGES = "/var/lib/libvirt/images"
STALE = "system_u:object_r:etc_t:s0"
GUESTS = ["6f7a1c2e-0f4b-4d1e-9a57-%012d" % i for i in range(8)]


class Ledger:
    """What the clients were told: the last acknowledged mode per (guest, volume), and
    the volumes with a call in flight (either outcome is allowed for those).

    Calls on one (guest, volume) that overlap in time may take effect in either order
    (the agent runs calls waiting together as one batch, and their answers arrive
    together): when the last acknowledged call overlapped another, either outcome is
    allowed too, until a call on that volume that overlaps none is acknowledged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}
        self.in_flight = collections.Counter()
        self.started = collections.Counter()
        self.ambiguous = set()

    def call(self, key, fn, mode):
        """Runs one call on `key`; returns False if it was cut off (the agent is gone:
        its caller stops, rather than mark one key after another open with calls that
        never reached it)."""
        with self.lock:
            overlapped = self.in_flight[key] > 0
            self.in_flight[key] += 1
            self.started[key] += 1
            started = self.started[key]

        def overlaps():
            # Another call on the key was running when this one started, started
            # since, or is still running.
            return overlapped or self.started[key] != started or self.in_flight[key] > 1

        try:
            fn()
        except Refused:
            with self.lock:  # a definite answer that changed nothing
                self.in_flight[key] -= 1
            return True
        except Exception:
            with self.lock:  # cut off by the kill: either outcome is allowed
                self.ambiguous.add(key)
                self.in_flight[key] -= 1
            return False
        with self.lock:
            self.acked[key] = mode
            if overlaps():
                self.ambiguous.add(key)
            else:
                self.ambiguous.discard(key)
            self.in_flight[key] -= 1
        return True

    def settled(self, key):
        """Whether the state of `key` must equal its last acknowledged mode."""
        return self.in_flight[key] == 0 and key not in self.ambiguous


class Refused(Exception):
    pass


def storm(stop, sock, volumes, ledger, seed):
    rng = random.Random(seed)
    try:
        c = svirtpool.Client(sock, timeout=5)
    except OSError:
        return
    def api(fn):
        def run():
            try:
                fn()
            except svirtpool.VarlinkError as e:
                raise Refused(e)
        return run

    while not stop.is_set():
        g, v = rng.choice(GUESTS), rng.choice(volumes)
        if rng.random() < 0.5:
            mode = rng.choice(["rw", "ro", "shared"])
            answered = ledger.call((g, v), api(lambda: c.attach(g, v, mode)), "held")
        else:
            answered = ledger.call((g, v), api(lambda: c.detach(g, v)), None)
        if not answered:
            return


def cli_storm(stop, binary, config, volumes, ledger, seed):
    rng = random.Random(seed)
    while not stop.is_set():
        g, v = rng.choice(GUESTS), rng.choice(volumes)
        verb = rng.choice(["attach", "detach"])
        args = [binary, "--config", config, verb, "--guest", g, "--volume", v]
        if verb == "attach":
            args += ["--mode", rng.choice(["rw", "ro", "shared"])]

        def run():
            out = subprocess.run(args, capture_output=True, text=True)
            if out.returncode == 1 and "talking to the agent" not in out.stderr:
                raise Refused(out.stderr)
            if out.returncode != 0:
                raise RuntimeError("cut off: " + out.stderr)

        if not ledger.call((g, v), run, "held" if verb == "attach" else None):
            return


def check(binary, config, state, volumes, ledger):
    """Returns the list of violations after a restart."""
    bad = []
    out = subprocess.run([binary, "--config", config, "status", "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        return ["status failed: %s" % out.stderr.strip()]
    status = json.loads(out.stdout)
    held = {}
    for pool in status["pools"]:
        for v in pool["volumes"]:
            if v["drift"]:
                bad.append("drift: %s is %s, wants %s" % (v["path"], v["current"], v["desired"]))
            for h in v["attachments"]:
                held[(h["guest"], v["path"])] = h["mode"]
    guests = json.loads(subprocess.run([binary, "--config", config, "guest", "list"],
                                       capture_output=True, text=True).stdout)
    pairs = [g["categories"] for g in guests]
    if len(pairs) != len(set(pairs)):
        bad.append("two guests share a pair")
    with ledger.lock:
        for key, mode in ledger.acked.items():
            if not ledger.settled(key):
                continue
            if (mode is None) != (key not in held):
                bad.append("lost: %s acknowledged %s, state says %s" % (key, mode or "detached", held.get(key)))
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(state, "state.db"), uri=True)
    answer = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    if answer != "ok":
        bad.append("integrity_check: %s" % answer)
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--binary", default="target/release/svirt-pool")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("crash.py: run as root")
    binary = os.path.abspath(a.binary)
    rng = random.Random(a.seed)
    # Made here too: a host without libvirt has no image pool (0711, as libvirt makes it).
    os.makedirs(IMAGES, mode=0o711, exist_ok=True)
    pool = tempfile.mkdtemp(prefix="svirt-crash-", dir=IMAGES)
    state = tempfile.mkdtemp(prefix="svirt-crash-state-")
    config = os.path.join(state, "c.toml")
    with open(config, "w") as f:
        f.write('state_dir = "%s"\n[api]\nsocket = "%s/api.sock"\n[[pool]]\nname = "p"\ntype = "dir"\npath = "%s"\n'
                % (state, state, pool))
    per_dir = 1000
    for d in range(max(1, a.files // per_dir)):
        sub = os.path.join(pool, "d%04d" % d)
        os.makedirs(sub)
        for i in range(min(per_dir, a.files)):
            open(os.path.join(sub, "f%04d.img" % i), "wb").close()
    volumes = [os.path.join(pool, "vol%02d.img" % i) for i in range(24)]
    for v in volumes:
        open(v, "wb").close()
    for g in GUESTS:
        subprocess.run([binary, "--config", config, "guest", "define", "--uuid", g], check=True,
                       capture_output=True)
    ledger = Ledger()
    violations, counts = [], {"scan": 0, "storm": 0, "burst": 0}
    print("seed %d, %d files, %d kills" % (a.seed, a.files, a.kills))
    try:
        for k in range(a.kills):
            kind = ["scan", "storm", "burst"][k % 3]
            counts[kind] += 1
            if kind == "scan":
                subprocess.run(["chcon", "-R", STALE, pool], check=True)
            agent = Agent(binary, config)
            stop = threading.Event()
            threads = []
            if kind == "scan":
                time.sleep(rng.uniform(0, 0.6 * a.files / 100000 + 0.05))
            else:
                agent.wait_ready()
                if kind == "storm":
                    sock = os.path.join(state, "api.sock")
                    threads = [threading.Thread(target=storm, args=(stop, sock, volumes, ledger, rng.random()))
                               for _ in range(4)]
                    threads += [threading.Thread(target=cli_storm, args=(stop, binary, config, volumes, ledger,
                                                                          rng.random())) for _ in range(2)]
                else:
                    burst_dir = os.path.join(pool, "burst%03d" % k)
                    os.makedirs(burst_dir)

                    def write(w, burst_dir=burst_dir):
                        for i in range(2000):
                            if stop.is_set():
                                return
                            open(os.path.join(burst_dir, "w%d-%04d.img" % (w, i)), "wb").close()

                    threads = [threading.Thread(target=write, args=(w,)) for w in range(2)]
                for t in threads:
                    t.start()
                time.sleep(rng.uniform(0.05, 1.0))
            agent.kill()
            stop.set()
            for t in threads:
                t.join()
            agent = Agent(binary, config)
            agent.wait_ready()
            bad = check(binary, config, state, volumes, ledger)
            agent.stop()
            violations += bad
            print("kill %2d (%s): %s" % (k + 1, kind, "ok" if not bad else "; ".join(bad[:3])), flush=True)
    finally:
        shutil.rmtree(pool, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    acked = len(ledger.acked)
    open_now = sum(1 for key in ledger.acked if not ledger.settled(key))
    print("kills survived: %d (scan %d, storm %d, burst %d); acknowledged volume states: %d, "
          "checked after the last kill: %d (%d open: overlapping or cut-off calls); violations: %d"
          % (a.kills, counts["scan"], counts["storm"], counts["burst"], acked, acked - open_now, open_now,
             len(violations)))
    sys.exit(1 if violations else 0)


if __name__ == "__main__":
    main()
