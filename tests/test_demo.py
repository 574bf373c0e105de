"""`make demo` itself runs for minutes (not a test); these check what it relies on."""

from ingest.devtools import demo


def test_demo_finds_the_workflow_and_the_package():
    # It runs workflow/Snakefile and puts the source tree on the collectors' PYTHONPATH.
    assert (demo.REPO / "workflow" / "Snakefile").is_file()
    assert (demo.REPO / "ingest" / "__init__.py").is_file()
