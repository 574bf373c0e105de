"""make lint's check of the rule files: ruff on the Python Snakemake compiles them to."""

from __future__ import annotations

from ingest.devtools.lint_workflow import compile_workflow, ruff_findings

SNAKEFILE = """\
include: "rules/common.smk"


rule all:
    input:
        helper(),
"""
COMMON = """\
import json


def helper():
    return [confg["x"]]
"""


def test_findings_point_at_the_rule_files_lines(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "rules" / "common.smk").write_text(COMMON)
    common = (tmp_path / "rules" / "common.smk").resolve()
    assert ruff_findings(compile_workflow(tmp_path / "Snakefile")) == [
        f"{common}:1: F401 `json` imported but unused",
        f"{common}:5: F821 Undefined name `confg`",
    ]


def test_the_workflow_is_clean():
    assert ruff_findings(compile_workflow()) == []
