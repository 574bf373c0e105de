"""Lint the workflow's rule files (``workflow/Snakefile``, ``workflow/rules/*.smk``): make lint.

ruff cannot parse Snakemake's syntax (``rule x:`` blocks), so on its own it never sees the Python
in the rule files. Snakemake's own parser can: it compiles a Snakefile to plain Python (each rule
becomes a decorated function), line for line traceable and with comments (and ``noqa``) kept.
This tool

1. compiles the Snakefile and its includes, in include order, into one module: Snakemake runs
   them in one namespace, so a helper of common.smk used in build.smk is defined, an unused
   import is unused;
2. runs ruff's checks for mistakes on it (pyflakes, bugbear, pyupgrade), with the names
   Snakemake puts into a Snakefile's namespace as builtins, and reports each finding at its
   line in the rule file. Layout checks are left out: snakefmt formats the rule files;
3. runs ``snakemake --lint`` with a config made from config/config.yaml whose directories all lie
   in a temporary folder (so it works on a fresh clone), and fails on every lint except the one
   the Snakefile explains: no rule names a conda env or container, jobs run in the project's
   .venv.

    python -m ingest.devtools.lint_workflow          # exit status 1 when anything is found
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflow" / "Snakefile"
CONFIG = REPO / "config" / "config.yaml"
# Mistakes, not layout: pyflakes, bugbear, pyupgrade, comparisons (E7), syntax (E9).
RUFF_SELECT = "F,B,UP,E7,E9"
# What Snakemake puts into a Snakefile's namespace (snakemake.workflow's module globals, and
# what Workflow and snakemake.ioutils/ioflags register there).
SNAKEMAKE_NAMES = sorted(
    {
        # the workflow and its registries
        *("workflow", "config", "rules", "checkpoints", "scatter", "gather", "storage", "pep"),
        *("github", "gitlab", "gitfile", "from_queue", "access"),
        # file flags and helpers for inputs and outputs
        *("ancient", "directory", "ensure", "expand", "flag", "glob_wildcards", "local"),
        *("multiext", "pipe", "protected", "report", "service", "temp", "temporary", "touch"),
        *("unpack", "update", "before_update", "branch", "collect", "evaluate", "exists"),
        *("flatten", "lookup", "subpath", "as_py_module", "choose_file", "choose_folder"),
        *("choose_tmp", "extract_checksum", "parse_input", "prepend_param"),
        *("input", "output", "params", "resources", "threads"),
        # what the compiled rule bodies call
        *("script", "shell", "notebook", "wrapper", "cwl", "render_template"),
    }
)
# The one `snakemake --lint` message accepted (see the Snakefile's header).
ACCEPTED_LINTS = {"Specify a conda environment or container for each rule."}


@dataclass
class Compiled:
    """The rule files as one Python module, and where each of its lines came from."""

    code: str
    origin: dict[int, tuple[Path, int]]  # module line -> (rule file, line)


class _Source:
    """A local file as snakemake.parser.parse takes it (a sourcecache.SourceFile's interface)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get_path_or_uri(self, secret_free: bool = False) -> str:
        return str(self.path)


class _Workflow:
    """The one thing snakemake.parser.parse needs of a workflow: a way to open a source."""

    class sourcecache:  # named as Workflow's attribute
        @staticmethod
        def open(source: _Source):
            return open(source.path, encoding="utf-8")


def compile_rule_file(path: Path) -> tuple[str, dict[int, int]]:
    """A rule file compiled by Snakemake's parser: its Python, and compiled line -> file line."""
    from snakemake.parser import parse

    linemap: dict[int, int] = {}
    code, _ = parse(_Source(path), _Workflow(), linemap)
    return code, linemap


INCLUDE = re.compile(r"workflow\.include\(\s*(['\"])(?P<path>.+?)\1")


def compile_workflow(snakefile: Path = SNAKEFILE) -> Compiled:
    """The Snakefile with each include replaced by the included file, as Snakemake runs them."""
    lines: list[tuple[str, Path, int]] = []  # compiled line, its rule file, its line there

    def add(path: Path) -> None:
        code, linemap = compile_rule_file(path)
        numbered = [(text, path, linemap.get(n, n)) for n, text in enumerate(code.splitlines(), 1)]
        start = 0
        for m in INCLUDE.finditer(code):
            at = code.count("\n", 0, m.start())  # the include's line (it starts one)
            lines.extend(numbered[start:at])
            add((path.parent / m["path"]).resolve())
            start = at
        lines.extend(numbered[start:])

    add(snakefile.resolve())
    code = "".join(text + "\n" for text, _, _ in lines)
    return Compiled(code, {n: (path, line) for n, (_, path, line) in enumerate(lines, 1)})


def ruff_findings(compiled: Compiled) -> list[str]:
    """ruff's findings on the compiled rule files, as ``file:line: CODE message``."""
    cmd = [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache"]
    cmd += ["--target-version", "py311", "--select", RUFF_SELECT, "--output-format", "json"]
    cmd += ["--config", f"builtins = {json.dumps(SNAKEMAKE_NAMES)}"]
    cmd += ["--stdin-filename", "workflow.py", "-"]
    proc = subprocess.run(cmd, input=compiled.code, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"ruff failed ({proc.returncode}): {proc.stderr}")
    out = []
    for finding in json.loads(proc.stdout):
        path, line = compiled.origin[finding["location"]["row"]]
        where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        out.append(f"{where}:{line}: {finding['code']} {finding['message']}")
    return out


def lint_config(folder: Path) -> Path:
    """config/config.yaml with every directory moved below ``folder``: a config the workflow
    accepts on any machine (the real one names /data/...)."""
    config = yaml.safe_load(CONFIG.read_text())
    config["vault_dir"] = str(folder / "vault")
    config["work_dir"] = str(folder / "work")
    for server in config["servers"]:
        server["raw_dir"] = str(folder / "raw" / server["name"])
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


LINT_HEADER = re.compile(r"^Lints for (?P<what>.+):$")
LINT_TITLE = re.compile(r"^    \* (?P<title>.+?):?$")


def snakemake_lints(snakefile: Path = SNAKEFILE) -> list[str]:
    """What ``snakemake --lint`` reports, but the accepted lint, as ``where: title``."""
    with tempfile.TemporaryDirectory(prefix="lint-workflow-") as tmp:
        config = lint_config(Path(tmp))
        cmd = [sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(snakefile)]
        cmd += ["--configfile", str(config), "--directory", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
    text = proc.stdout + proc.stderr
    found, where = [], "?"
    for line in text.splitlines():
        if m := LINT_HEADER.match(line):
            where = m["what"]
        elif (m := LINT_TITLE.match(line)) and m["title"] not in ACCEPTED_LINTS:
            found.append(f"{where}: {m['title']}")
    if proc.returncode != 0 and not found and "Lints for" not in text:
        found.append(f"snakemake --lint failed ({proc.returncode}):\n{text[-3000:]}")
    return found


def main() -> int:
    problems = ruff_findings(compile_workflow()) + snakemake_lints()
    for p in problems:
        print(p)
    print(f"workflow lint: {len(problems) or 'no'} problem{'s' * (len(problems) != 1)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
