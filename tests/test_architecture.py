"""The package's layout is its map: these checks keep the rooms apart.

- ``devtools`` (generator, stream stand-in, demo) is never imported by production code;
- each room imports only the shared top-level modules and the rooms before it on the data
  path (``hours`` reads the pull's state; ``observe`` reads every stage's files; ``publish``
  sends the built hours, the vault's manifests and the day's plot), so there are no cycles
  between rooms;
- no module imports another module's private (``_``-prefixed) names.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ingest"
SHARED = "shared"
# Which rooms each room may import from (itself always).
ALLOWED = {
    SHARED: {SHARED},
    "collect": {SHARED},
    "imports": {SHARED},
    "pull": {SHARED},
    "hours": {SHARED, "pull", "vault"},  # the plan waits for a secondary; the build commits records
    "vault": {SHARED},
    "comply": {SHARED, "collect", "hours", "vault"},  # twarc's client, the merge's formats
    "observe": {SHARED, "collect", "pull", "hours", "vault"},
    "publish": {SHARED, "hours", "vault", "observe"},  # the day mail's plot and link
    "cli": {SHARED, "collect", "imports", "observe", "vault", "comply"},
    "devtools": {
        SHARED,
        "cli",
        "comply",
        "collect",
        "imports",
        "pull",
        "hours",
        "vault",
        "observe",
        "publish",
    },
}


def room(module: str) -> str:
    """``ingest.hours.plan`` -> ``hours``; top-level helpers are ``shared``; the CLI its own."""
    parts = module.split(".")
    if len(parts) > 2 and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "cli" if module == "ingest.cli" else SHARED


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every ``ingest`` import, at any depth (lazy ones too)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ingest"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if (PACKAGE / Path(*sub.split(".")[1:])).with_suffix(".py").exists():
                    out.append((sub, []))  # `from ingest.hours import plan`: a module
                else:
                    out.append((node.module, [alias.name]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("ingest")]
    return out


def test_every_room_imports_only_what_it_may() -> None:
    wrong = []
    for name, tree in modules().items():
        for target, _ in imports(tree):
            if room(target) not in ALLOWED[room(name)] | {room(name)}:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_production_never_imports_devtools() -> None:
    wrong = [
        f"{name} imports {target}"
        for name, tree in modules().items()
        if room(name) != "devtools"
        for target, _ in imports(tree)
        if room(target) == "devtools"
    ]
    assert not wrong, "\n".join(wrong)


def test_no_private_names_across_modules() -> None:
    wrong = [
        f"{name} imports {target}.{n}"
        for name, tree in modules().items()
        for target, names in imports(tree)
        for n in names
        if n.startswith("_") and target != name
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_between_modules() -> None:
    mods = modules()
    graph = {
        name: {t for t, _ in imports(tree) if t != name and t in mods}
        for name, tree in mods.items()
    }
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph[node]):
            assert seen.get(nxt) != 1, "import cycle: " + " -> ".join([*path, node, nxt])
            if nxt not in seen:
                visit(nxt, [*path, node])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [])


def test_the_room_rules_catch_a_violation() -> None:
    """The checks above could fail: an hours module importing a publish module is caught."""
    tree = ast.parse("from ingest.publish import osf\nfrom ingest.layout import _LABEL\n")
    found = imports(tree)
    assert ("ingest.publish.osf", []) in found and ("ingest.layout", ["_LABEL"]) in found
    assert room("ingest.publish.osf") not in ALLOWED["hours"]
