import os

import pytest
import yaml

from ingest.config import ConfigError, load_config
from ingest.secrets import SecretError, read_secret

MINIMAL = """
timezone: CET
vault_dir: /data/vault
work_dir: /data/work
servers:
  - name: server1
    raw_dir: /data/raw/server1
  - name: server2
    raw_dir: /data/raw/server2
osf:
  enabled: false
email:
  enabled: false
"""


def write(tmp_path, text):
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return p


def test_minimal_config_gets_defaults(tmp_path):
    c = load_config(write(tmp_path, MINIMAL))
    assert (c["late_minutes"], c["grace_minutes"], c["xz_preset"]) == (6, 5, 6)
    assert c["retention"] == {"keep_raw_hours": 48, "delete_imported": False}
    assert c["servers"][1]["remove_source_files"] is True
    assert not any(s["imported"] for s in c["servers"])
    assert c["stream"]["url"] == "https://api.twitter.com/2/tweets/sample/stream"


def test_example_config_in_repo_is_valid():
    from pathlib import Path

    load_config(Path(__file__).parents[1] / "config" / "config.yaml")


def test_one_schema_inside_the_package_used_by_the_workflow_too():
    """The schema is package data (a non-editable install finds it) and the workflow validates
    with the package's own validate_config (which reads that file), not a copy."""
    import re
    from pathlib import Path

    import ingest
    from ingest.config import SCHEMA_PATH

    assert SCHEMA_PATH.is_file()
    assert SCHEMA_PATH.is_relative_to(Path(ingest.__file__).parent)
    rules = Path(__file__).parents[1] / "workflow" / "rules"
    common = (rules / "common.smk").read_text()
    assert re.search(r"^from ingest\.config import .*\bvalidate_config\b", common, re.M)
    assert re.search(r"^    validate_config\(config, ", common, re.M), "not validated"
    assert "schema=" not in common
    assert not list(rules.parent.glob("**/*.schema.yaml")), "a second copy under workflow/"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.pop("vault_dir"), "'vault_dir' is a required property"),
        (lambda c: c.update(late_minutes="six"), "late_minutes: 'six' is not of type 'integer'"),
        (lambda c: c["servers"][1].update(raw_dir=5), "servers[1].raw_dir: 5 is not of type"),
        (lambda c: c.update(timezone="Mars/Olympus"), "timezone: unknown time zone"),
        (lambda c: c["servers"][1].update(name="server1"), "duplicate server name(s) server1"),
        (lambda c: c.update(osf={"enabled": True}), "osf: 'project' is a required property"),
        (lambda c: c.update(xz_preset=12), "xz_preset: 12 is greater than the maximum of 9"),
        (lambda c: c.update(late_minuts=3), "Additional properties are not allowed ('late_minuts'"),
    ],
)
def test_invalid_config_names_the_key(tmp_path, change, message):
    c = yaml.safe_load(MINIMAL)
    change(c)
    path = write(tmp_path, yaml.safe_dump(c))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value)
    assert message in str(e.value)


def test_unreadable_or_broken_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "servers: [\n"))


def test_secret_file_permissions_are_checked(tmp_path, monkeypatch):
    p = tmp_path / "token"
    p.write_text("s3cret\n")
    os.chmod(p, 0o644)
    with pytest.raises(SecretError, match="chmod 600") as e:
        read_secret(p, "X_TOKEN", "stream.bearer_token_file")
    assert "s3cret" not in str(e.value)
    os.chmod(p, 0o600)
    assert read_secret(p, "X_TOKEN", "stream.bearer_token_file") == "s3cret"
    p.write_text("  \n")
    with pytest.raises(SecretError, match="is empty"):
        read_secret(p, "X_TOKEN", "t")
    monkeypatch.setenv("X_TOKEN", "from-env")
    assert read_secret(None, "X_TOKEN", "t") == "from-env"
    monkeypatch.delenv("X_TOKEN")
    with pytest.raises(SecretError, match="X_TOKEN"):
        read_secret(None, "X_TOKEN", "t")


@pytest.mark.parametrize(
    ("email", "port"),
    [
        ({"security": "ssl"}, 465),
        ({"security": "none"}, 25),
        ({"security": "starttls"}, 587),
        ({}, 587),  # security defaults to starttls
        ({"security": "ssl", "smtp_port": 2465}, 2465),  # a given port is kept
    ],
)
def test_smtp_port_default_follows_security(tmp_path, email, port):
    """``security: ssl`` without ``smtp_port`` used to get 587 (the schema's one default)."""
    from ingest.notify import Mailer

    c = yaml.safe_load(MINIMAL)
    c["email"] = {"enabled": True, "smtp_host": "h", "from": "a@b", "to": ["c@d"], **email}
    loaded = load_config(write(tmp_path, yaml.safe_dump(c)))
    assert loaded["email"]["smtp_port"] == port
    assert Mailer.from_config(loaded["email"]).port == port


@pytest.mark.parametrize(
    "extra",
    [
        {"email": None, "osf": None},  # whole sections from their defaults
        {"email": {"enabled": False, "security": "ssl"}},
        {"email": {"enabled": False, "security": "none"}, "stream": {"backfill_minutes": 0}},
    ],
)
def test_workflow_validate_fills_the_same_defaults(extra):
    """The workflow's snakemake validate() and load_config fill in the very same config."""
    import copy

    from snakemake.utils import validate

    from ingest.config import SCHEMA_PATH, validate_config

    c = {k: v for k, v in {**yaml.safe_load(MINIMAL), **extra}.items() if v is not None}
    by_workflow = copy.deepcopy(c)
    validate(by_workflow, schema=str(SCHEMA_PATH))
    assert by_workflow == validate_config(c)


def test_filled_defaults_are_not_shared(tmp_path):
    c = load_config(write(tmp_path, MINIMAL))
    c["servers"][0]["rsync_options"].append("--bwlimit=1000")
    assert c["servers"][1]["rsync_options"] == []


def test_broken_yaml_names_the_file_line_and_column(tmp_path):
    path = write(tmp_path, MINIMAL.replace("    raw_dir: /data/raw/server2", "   raw_dir: x"))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}, line 9, column 4: not valid YAML: ")


def test_a_wrong_section_is_named_by_its_type_not_printed_whole(tmp_path):
    c = yaml.safe_load(MINIMAL)
    c["servers"] = {f"server{i}": {"raw_dir": f"/data/raw/{i}" * 20} for i in range(50)}
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, yaml.safe_dump(c)))
    assert "servers: is a dict, expected array" in str(e.value)
    assert len(str(e.value)) < 400
