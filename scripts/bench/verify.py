#!/usr/bin/env python3
"""`svirt-pool verify` on a host of --files volumes and --guests guests, beside its peer.

The data: a dir pool of --files empty files in --dirs directories; --guests guests,
each holding --holds files rw; --isos files held ro by every guest in turn (each ISO by
guests/isos of them). The agent labels it all, then stops; verify runs alone.

Rows (median of --runs):
  verify            the whole check: walk the pool, read the state, ask the policy
                    for every guest and every distinct label, print JSON
  status --json     the walk and the state alone (what verify cannot do without)
  audit2why         the peer: python3-selinux's audit2why answering the same
                    questions (guests x distinct labels), timed on --sample of them
                    and scaled to all of them
Needs root, a release build, the refpolicy and python3-selinux.

    scripts/bench/verify.py [--files 100000] [--dirs 100] [--guests 1000] [--holds 2]
                            [--isos 20] [--runs 3] [--sample 20000]
"""
import argparse
import glob
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
sys.path.insert(0, os.path.join(HERE, ".."))
import svirtpool  # noqa: E402
from agentproc import Agent  # noqa: E402

sys.path.insert(0, HERE)
from pools import IMAGES, make_tree, write_config  # noqa: E402
from attach import guest_uuid  # noqa: E402


def run(binary, config, *args):
    """Runs the CLI; returns (seconds, stdout, its peak RSS in KiB)."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen([binary, "--config", config, *args], stdout=subprocess.PIPE,
                             stderr=err)
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        secs = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode not in (0, 1):
            err.seek(0)
            sys.exit("svirt-pool %s: %s" % (" ".join(args), err.read().decode()))
    return secs, out, usage.ru_maxrss


# Run by Debian's python3 (python3-selinux is its module): answers each question of a
# JSON list and prints the seconds the answers took.
AUDIT2WHY = """
import glob, json, sys, time
import selinux.audit2why as audit2why
questions = json.load(open(sys.argv[1]))
audit2why.init(sorted(glob.glob("/etc/selinux/default/policy/policy.*"))[-1])
t = time.perf_counter()
for scon, tcon in questions:
    audit2why.analyze(scon, tcon, "file", ["read", "write"])
print(time.perf_counter() - t)
audit2why.finish()
"""


def audit2why_rate(questions, dir):
    """Seconds per question of audit2why.analyze on the installed policy."""
    path = os.path.join(dir, "questions.json")
    with open(path, "w") as f:
        json.dump(questions, f)
    out = subprocess.run(["/usr/bin/python3", "-c", AUDIT2WHY, path], check=True,
                         stdout=subprocess.PIPE).stdout
    return float(out) / len(questions)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--dirs", type=int, default=100)
    ap.add_argument("--guests", type=int, default=1000)
    ap.add_argument("--holds", type=int, default=2)
    ap.add_argument("--isos", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sample", type=int, default=20000)
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "..", "target", "release",
                                                     "svirt-pool"))
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    pool = tempfile.mkdtemp(prefix="svirt-bench-verify-", dir=IMAGES)
    state = tempfile.mkdtemp(prefix="svirt-bench-verify-state-")
    try:
        n = make_tree(pool, a.files, a.dirs)
        files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(pool) for f in fs)
        config = write_config(state, pool)
        agent = Agent(binary, config).wait_ready()
        c = svirtpool.Client(os.path.join(state, "api.sock"))
        t = time.perf_counter()
        isos = files[-a.isos:] if a.isos else []
        for i in range(a.guests):
            uuid = guest_uuid(i)
            c.define_guest(uuid, "g%d" % i)
            for k in range(a.holds):
                c.attach(uuid, files[i * a.holds + k], "rw")
            if isos:
                c.attach(uuid, isos[i % len(isos)], "ro")
        setup = time.perf_counter() - t
        c.close()
        agent.proc.terminate()
        agent.proc.wait()
        held = a.guests * a.holds + len(isos)
        print("verify: %d files in %d dirs, %d guests holding %d rw each, %d ISOs ro "
              "(%d volumes held; set up through the API in %.1f s)"
              % (n, a.dirs, a.guests, a.holds, len(isos), held, setup))

        times, walks, rss = [], [], 0
        report = None
        for _ in range(a.runs):
            secs, out, peak = run(binary, config, "verify", "--json")
            times.append(secs)
            rss = max(rss, peak)
            report = json.loads(out)
            walks.append(run(binary, config, "status", "--json")[0])
        if report["findings"]:
            sys.exit("a sound host has findings: %s" % report["findings"][:3])
        v = statistics.median(times)
        walk = statistics.median(walks)

        # The same questions for the peer: every guest's process label against every
        # distinct label the volumes carry.
        labels = sorted({os.getxattr(f, "security.selinux").rstrip(b"\0").decode()
                         for f in files[:a.guests * a.holds] + isos + files[-a.isos - 5:]})
        procs = ["system_u:system_r:svirt_t:s0:%s" % g["categories"]
                 for g in json.loads(run(binary, config, "guest", "list")[1])]
        all_questions = report["questions"]
        sample = [(random.choice(procs), random.choice(labels))
                  for _ in range(min(a.sample, all_questions))]
        per = audit2why_rate(sample, state)
        peer = per * all_questions

        print("%-40s %10s %14s" % ("", "seconds", "policy asked"))
        print("%-40s %10.2f %14d" % ("svirt-pool verify (%d questions)" % all_questions, v,
                                     report["asked_policy"]))
        print("%-40s %10.2f %14s" % ("svirt-pool status --json (walk)", walk, "-"))
        print("%-40s %10.2f %14d" % ("audit2why, same questions", peer, all_questions))
        print("volumes %d, distinct labels %d, guests %d; verify peak RSS %.1f MiB; "
              "audit2why timed on %d questions (%.1f us each) and scaled; goal <= 10 s"
              % (report["volumes"], report["labels"], report["guests"], rss / 1024,
                 len(sample), per * 1e6))
    finally:
        shutil.rmtree(pool, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
