#!/usr/bin/env python3
"""The crate's module graph, read from the sources: who uses whom, and its cycles.

The top-level modules form layers (LAYERS, lowest first): a module may use only the
modules of lower layers, besides its own parts, so `fsys` never reaches up into
`decide`, nor `observe` into `apply`.

A module uses another when its code (tests excluded) names it by `crate::`,
`super::`, `self::` or a child's name. A parent that only declares a child (`mod x;`)
does not use it. Prints the cycles (strongly connected sets of modules) and the uses
against the layers, and exits 1 if there is one; `--edges` prints every module's uses as well.

    python3 scripts/modules.py [--edges] [SRC]
"""

import os
import re
import sys


# Lowest first. Each line: the modules of one layer.
LAYERS = [
    ["users", "model", "fsys", "run"],
    ["decide"],
    ["error"],
    ["lock"],
    ["observe", "apply", "registry"],
    ["config"],
    ["state", "cluster", "reconcile"],
    ["backend"],
    ["ops"],
    ["libvirt"],
    ["api"],
    ["agent", "hook"],
    ["cli", ""],
]


def layer_of(module):
    top = module.split("::")[0]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    return None


def against_layers(edges):
    """Uses of a module of the same or a higher layer (or of none), as text."""
    out = []
    for m in sorted(edges):
        for used in sorted(edges[m]):
            if m.split("::")[0] == used.split("::")[0]:
                continue
            lm, lu = layer_of(m), layer_of(used)
            if lm is None or lu is None or lu >= lm:
                out.append(f"{m or 'crate'} uses {used}: not a lower layer")
    return out


def module_files(src):
    """Module path ("ops::volumes") -> file, for every .rs file under src (not bin/)."""
    mods = {}
    for dirpath, _, names in os.walk(src):
        for name in names:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[0] == "bin":
                continue
            if rel[-1] in ("mod", "lib", "main"):
                rel = rel[:-1]
            mods["::".join(rel)] = path
    return mods


def longest_module(parts, mods):
    for i in range(len(parts), 0, -1):
        name = "::".join(parts[:i])
        if name in mods:
            return name
    return None


def uses(module, path, mods):
    text = open(path, encoding="utf-8").read()
    # The code, not its unit tests.
    text = re.split(r"#\[cfg\(test\)\]\s*(?:pub(?:\(\w+\))?\s+)?mod \w+", text)[0]
    here = module.split("::") if module else []
    found = set()

    def add(parts):
        name = longest_module(parts, mods)
        if name is not None and name != module:
            found.add(name)

    for m in re.finditer(r"crate::([a-z_]+(?:::[a-z_]+)*)", text):
        add(m.group(1).split("::"))
    for group in re.findall(r"use crate::\{([^;]*)\};", text, re.S):
        for item in re.findall(r"\b([a-z_]+(?:::[a-z_]+)*)", group):
            add(item.split("::"))
    for m in re.finditer(r"(?<![a-z_:])super::([a-z_]+(?:::[a-z_]+)*)", text):
        add(here[:-1] + m.group(1).split("::"))
    for group in re.findall(r"use super::\{([^;]*)\};", text, re.S):
        for item in re.findall(r"\b([a-z_]+(?:::[a-z_]+)*)", group):
            add(here[:-1] + item.split("::"))
    for m in re.finditer(r"(?<![a-z_:])self::([a-z_]+)", text):
        add(here + [m.group(1)])
    for name in mods:
        parts = name.split("::")
        if parts[:-1] == here and re.search(r"(?<![a-z_:])" + parts[-1] + "::", text):
            found.add(name)
    return found


def cycles(edges):
    """Tarjan's strongly connected components with more than one module."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "src")
    mods = module_files(src)
    edges = {m: uses(m, p, mods) for m, p in mods.items()}
    if "--edges" in sys.argv:
        for m in sorted(edges):
            print(f"{m or 'crate'} -> {', '.join(sorted(edges[m]))}")
    found = cycles(edges)
    for comp in found:
        print("cycle: " + " <-> ".join(comp))
    upward = against_layers(edges)
    for line in upward:
        print(line)
    if not found and not upward:
        print(f"{len(mods)} modules, no cycle, every use downward")
    return 1 if found or upward else 0


if __name__ == "__main__":
    sys.exit(main())
