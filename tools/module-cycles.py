#!/usr/bin/env python3
"""Lists import cycles between decompute's top-level modules (src/<module>.rs or
src/<module>/): every `crate::<module>` path in one module's files is an arrow to that
module. Prints each strongly connected group of two or more modules with the arrows inside it
(file and line of the first use), and exits 1 if there is any, so CI fails on a cycle.

    tools/module-cycles.py [--all]     --all: print every arrow, not only cycles
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(path):
    rel = os.path.relpath(path, ROOT)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(l.split("//")[0] if "//" in l and '"' not in l.split("//")[0] else l for l in text.splitlines())


def arrows():
    edges = {}
    mods = set()
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".rs"):
                continue
            p = os.path.join(dirpath, f)
            m = module_of(p)
            if m in ("lib", "main"):
                continue
            mods.add(m)
            text = open(p, encoding="utf-8").read()
            # Tests may reach anywhere; the layering is about the library itself.
            cut = text.find("#[cfg(test)]\nmod tests")
            if cut >= 0:
                text = text[:cut]
            for n, line in enumerate(strip_comments(text).splitlines(), 1):
                for target in re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", line):
                    if target != m:
                        edges.setdefault((m, target), f"{os.path.relpath(p, ROOT)}:{n}")
                # `use crate::{a, b::c}` groups
                for group in re.findall(r"\bcrate::\{([^}]*)\}", line):
                    for item in re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", group):
                        if item != m:
                            edges.setdefault((m, item), f"{os.path.relpath(p, ROOT)}:{n}")
    edges = {k: v for k, v in edges.items() if k[1] in mods}
    return mods, edges


def sccs(mods, edges):
    graph = {m: [] for m in mods}
    for a, b in edges:
        graph[a].append(b)
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for m in sorted(mods):
        if m not in index:
            visit(m)
    return [c for c in out if len(c) > 1]


def main():
    mods, edges = arrows()
    if "--all" in sys.argv:
        for (a, b), where in sorted(edges.items()):
            print(f"{a} -> {b}  ({where})")
    groups = sccs(mods, edges)
    for g in groups:
        print(f"cycle among {len(g)} modules: {', '.join(g)}")
        for (a, b), where in sorted(edges.items()):
            if a in g and b in g:
                print(f"  {a} -> {b}  ({where})")
    if groups:
        sys.exit(1)
    print(f"no import cycle among {len(mods)} modules ({len(edges)} arrows)")


main()
