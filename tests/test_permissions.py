"""Nothing the project writes is readable by other users (issue 10 item 10).

Files 0640, folders 0750, whatever the umask the run starts under (cron's is often 022); with
``file_group`` the top folders get that group and the setgid bit, so files below inherit it.
And no SMTP password in clear unless the config says so.
"""

from __future__ import annotations

import grp
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from ingest.atomic import XzWriter, atomic_write
from ingest.config import ConfigError
from ingest.perms import secure_dirs
from tests.configs import loaded_config, minimal_config
from tests.workflow_runs import snakemake

GROUP = grp.getgrgid(os.getgid()).gr_name  # a group the test user is in: its own


@pytest.fixture
def umask_022():
    old = os.umask(0o022)  # cron's usual umask: files 0644, folders 0755
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_files_are_0640_under_a_loose_umask(tmp_path, umask_022):
    atomic_write(tmp_path / "a.json", "{}")
    with XzWriter(tmp_path / "b.xz", preset=0, threads=1) as xz:
        xz.write(b"1\n")
    assert mode(tmp_path / "a.json") == 0o640
    assert mode(tmp_path / "b.xz") == 0o640


def test_the_command_line_sets_umask_027_first(tmp_path, umask_022, capsys):
    from ingest import cli
    from tests.configs import config_file

    cli.main(["status", "--config", str(config_file(tmp_path))])  # whatever it finds
    assert os.umask(0o022) == 0o027  # the collector's folders are 0750 whatever it inherited


def test_secure_dirs_makes_the_top_folders_0750_and_sets_the_group(tmp_path, umask_022):
    config = loaded_config(tmp_path)
    (tmp_path / "vault").mkdir(mode=0o755)
    assert secure_dirs(config) == []
    for d in ("vault", "work", "raw"):
        assert mode(tmp_path / d) == 0o750
    assert secure_dirs({**config, "file_group": GROUP}) == []
    for d in ("vault", "work", "raw"):
        assert mode(tmp_path / d) == 0o2750  # setgid: new files and folders inherit the group
        assert (tmp_path / d).stat().st_gid == os.getgid()
    (problem,) = secure_dirs({**config, "file_group": "no-such-group-here"})
    assert "file_group: no group named 'no-such-group-here'" in problem


def test_an_smtp_password_in_clear_is_refused_unless_allowed():
    email = {"enabled": True, "smtp_host": "h", "from": "a@b", "to": ["c@d"], "user": "u"}
    with pytest.raises(ConfigError, match="email.security: none would send email.user's"):
        loaded_config(email={**email, "security": "none"})
    loaded_config(email={**email, "security": "none", "allow_plaintext_password": True})
    loaded_config(email={**email, "security": "starttls"})
    loaded_config(email={**{k: v for k, v in email.items() if k != "user"}, "security": "none"})


@pytest.mark.integration
def test_a_workflow_run_under_umask_022_writes_nothing_others_can_read(tmp_path):
    from ingest.devtools.generate import generate_raw_tree

    tz = ZoneInfo("Europe/Berlin")
    raw = tmp_path / "raw"
    generate_raw_tree(
        [("s1", raw)],
        datetime(2026, 1, 14, 10, 50, tzinfo=UTC),
        datetime(2026, 1, 14, 11, 1, tzinfo=UTC),
        tz,
        rate_per_minute=20,
        seed=4,
    )
    config = minimal_config(tmp_path, late_minutes=1, grace_minutes=1, xz_preset=0)
    config["file_group"] = GROUP
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, now="2026-01-14T11:05:00+00:00", preexec_fn=lambda: os.umask(0o022))
    assert proc.returncode == 0, proc.stderr[-3000:]

    vault_files = [p for p in (tmp_path / "vault").rglob("*") if p.is_file()]
    assert any(p.name.endswith("_tweets.csv.xz") for p in vault_files)
    written = [*vault_files, *(tmp_path / "work").rglob("*")]
    readable = [f"{p} {oct(mode(p))}" for p in written if mode(p) & 0o007]
    assert not readable, "\n".join(readable)
    for p in written:
        assert mode(p) == (0o2750 if p.is_dir() else 0o640), p
        assert p.stat().st_gid == os.getgid(), p
    for d in ("vault", "work", "raw"):
        assert mode(tmp_path / d) == 0o2750
