#!/usr/bin/env python3
"""Import circles between the files of each crate: which .rs file names which module.

A file depends on another when it names one of its paths (`crate::a::b`, `super::x`, `self::y`,
in `use` lines or inline). Prints every strongly connected group of more than one file and exits 1
if there is one. Only the crates' `src/` trees are read (tests and benches are leaves)."""
import re
import sys
from pathlib import Path

CRATES = [Path("src"), Path("crates/cagem-autodiff/src"), Path("crates/cagem/src"),
          Path("crates/cagem-report/src"), Path("crates/cagem-cli/src"), Path("crates/cagem-py/src")]


def module_path(root, f):
    rel = f.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def expand_use_groups(text):
    """`use crate::a::{b, c::d}` → mentions of crate::a::b and crate::a::c::d."""
    out = []
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)*)::\{([^;]*?)\}\s*;", text, flags=re.S):
        base = m.group(1)
        body = m.group(2)
        depth, item, items = 0, "", []
        for ch in body:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                items.append(item)
                item = ""
            else:
                item += ch
        items.append(item)
        for it in items:
            it = re.sub(r"\s+", "", it)
            if it:
                out.append(f"{base}::{it.split('::{')[0]}")
    return out


def reexports(root, modules):
    """(module, item) → the module a `pub use` in that module takes the item from."""
    table = {}
    for mod, f in modules.items():
        text = strip_comments(f.read_text())
        for m in re.finditer(r"pub(?:\([^)]*\))?\s+use\s+([^;]+);", text, flags=re.S):
            spec = re.sub(r"\s+", "", m.group(1))
            if "::{" in spec:
                base, body = spec.split("::{", 1)
                items = [base + "::" + it for it in body.rstrip("}").split(",") if it]
            else:
                items = [spec]
            for it in items:
                parts = it.split("::")
                name = parts[-1].split(" as ")[-1]
                if parts[0] == "crate":
                    src = tuple(parts[1:-1])
                elif parts[0] == "super":
                    src = mod[:-1] + tuple(parts[1:-1])
                elif parts[0] == "self":
                    src = mod + tuple(parts[1:-1])
                else:
                    src = mod + tuple(parts[:-1])
                table[(mod, name)] = src
    return table


def resolve(modules, table, path):
    """The module file a path lands in, following re-exports."""
    for _ in range(10):
        for n in range(len(path), -1, -1):
            cand = tuple(path[:n])
            if cand in modules:
                break
        if n < len(path) and (cand, path[n]) in table:
            path = list(table[(cand, path[n])]) + path[n:]
            continue
        return cand
    return cand


def deps_of(root, modules, f, table):
    me = module_path(root, f)
    text = strip_comments(f.read_text())
    mentions = re.findall(r"\b(?:crate|super|self)(?:::\w+)+", text) + expand_use_groups(text)
    # paths relative to this module through its own child modules (`mod ffi;` … `ffi::Api`)
    for child in re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text, flags=re.M):
        if re.search(rf"(?<![:\w]){child}::", text):
            mentions.append(f"self::{child}")
    deps = set()
    for m in mentions:
        parts = m.split("::")
        head, rest = parts[0], parts[1:]
        if head == "crate":
            base = []
        elif head == "self":
            base = list(me)
        else:  # super
            base = list(me[:-1])
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
        cand = resolve(modules, table, base + rest)
        # the crate root only declares modules and re-exports: not a dependency
        if modules[cand] != f and cand != ():
            deps.add(modules[cand])
    return deps


def sccs(graph):
    index, low, stack, on, out, i = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = i[0]
        i[0] += 1
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
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main():
    found = 0
    for root in CRATES:
        if not root.is_dir():
            continue
        files = sorted(root.rglob("*.rs"))
        modules = {module_path(root, f): f for f in files}
        table = reexports(root, modules)
        graph = {f: deps_of(root, modules, f, table) for f in files}
        for comp in sccs(graph):
            if len(comp) > 1:
                found += 1
                print("circle:", " ↔ ".join(sorted(str(c) for c in comp)))
                for a in sorted(comp):
                    for b in sorted(graph[a] & set(comp)):
                        print(f"    {a} → {b}")
    if found:
        sys.exit(1)
    print("no import circles between files")


if __name__ == "__main__":
    main()
