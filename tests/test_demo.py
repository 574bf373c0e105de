"""`make demo` itself runs for minutes (not a test); these check what it relies on."""

from ingest.devtools import demo


def test_demo_finds_the_workflow_and_the_package():
    # It runs workflow/Snakefile and puts the source tree on the collectors' PYTHONPATH.
    assert (demo.REPO / "workflow" / "Snakefile").is_file()
    assert (demo.REPO / "ingest" / "__init__.py").is_file()


def test_the_demo_config_mails_no_more_once_its_smtp_sink_is_gone(tmp_path):
    from ingest.config import load_config

    config = demo.write_config(tmp_path, "http://127.0.0.1:9/2/tweets/sample/stream", 2525)
    before = load_config(config)
    assert before["email"]["enabled"] and before["email"]["smtp_port"] == 2525
    demo.retire_mail(config)
    after = load_config(config)
    assert after["email"]["enabled"] is False
    assert config.read_text().startswith("# make demo's SMTP sink stopped with the demo")
    assert {k: v for k, v in after.items() if k != "email"} == {
        k: v for k, v in before.items() if k != "email"
    }
