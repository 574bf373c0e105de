"""Load and validate the YAML config shared by the workflow and the ``sampled-stream`` command."""

from __future__ import annotations

import copy
import os
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import yaml

# Package data, so an installed (not only an editable) package finds it; the workflow validates
# against the same file.
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and key."""


# Test-only switch: lets a run that writes use ``now`` (tests and the demo replay fixed times).
# Production never sets it; see check_now.
TEST_CLOCK_ENV = "SAMPLED_STREAM_TEST_CLOCK"


def _with_defaults(validator_class):
    """A validator that fills in schema defaults, as snakemake.utils.validate(set_default=True)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    # A copy: two servers must not share one rsync_options list.
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def key_path(error: jsonschema.ValidationError) -> str:
    parts = []
    for p in error.absolute_path:
        parts.append(f"[{p}]" if isinstance(p, int) else (f".{p}" if parts else str(p)))
    return "".join(parts) or "(top level)"


def _reason(error: jsonschema.ValidationError, limit: int = 160) -> str:
    """The schema's complaint in one short line: a wrong value is named by its type, not
    printed whole (a section given where a list belongs would fill the screen)."""
    if error.validator == "type" and isinstance(error.instance, dict | list):
        return f"is a {type(error.instance).__name__}, expected {error.validator_value}"
    text = " ".join(error.message.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def normalize(config: dict[str, Any]) -> dict[str, Any]:
    """YAML reads an unquoted ``now: 2026-01-14T12:00:00+00:00`` as a datetime: keep it text."""
    if isinstance(config.get("now"), datetime):
        config["now"] = config["now"].isoformat()
    return config


def _validator() -> jsonschema.protocols.Validator:
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    return _with_defaults(jsonschema.Draft202012Validator)(schema)


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with every schema default filled in, valid or not: what the alert
    about an invalid config still needs (its email section, with max_per_hour and the rest)."""
    filled = copy.deepcopy(config)
    for _ in _validator().iter_errors(filled):
        pass  # iterating fills the defaults; the errors are someone else's to report
    return filled


def validate_config(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Fill defaults into ``config`` and check it; raise ConfigError naming the bad key."""
    normalize(config)
    errors = sorted(_validator().iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{source}: {key_path(e)}: {_reason(e)}" for e in errors]
        raise ConfigError("invalid config\n  " + "\n  ".join(lines))
    check_semantics(config, source)
    return config


def check_semantics(config: dict[str, Any], source: str = "config") -> None:
    """What the schema cannot say: a real time zone, unique server names, no password in clear."""
    try:
        ZoneInfo(config["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{source}: timezone: unknown time zone {config['timezone']!r}") from None
    names = [s["name"] for s in config["servers"]]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source}: servers: duplicate server name(s) {', '.join(dupes)}")
    email = config.get("email", {})
    if (
        email.get("enabled")
        and email.get("security") == "none"
        and email.get("user")
        and not email.get("allow_plaintext_password")
    ):
        raise ConfigError(
            f"{source}: email.security: none would send email.user's password in clear; use "
            "starttls or ssl, or set email.allow_plaintext_password: true"
        )


def check_now(config: dict[str, Any], dry_run: bool) -> None:
    """``now`` is for dry runs: a run that writes at a pretended time would build hours that are
    not complete and let retention delete raw files early. Tests opt in with TEST_CLOCK_ENV=1."""
    if config.get("now") and not dry_run and os.environ.get(TEST_CLOCK_ENV) != "1":
        raise ConfigError(
            f"now: {config['now']!r} is for dry runs only (snakemake -n); a run that writes "
            "uses the real time"
        )


def load_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(yaml_problem(path, e)) from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return validate_config(config, str(path))


def yaml_problem(path: str | Path, error: yaml.YAMLError) -> str:
    """ "config.yaml, line 5, column 4: not valid YAML: expected <block end>, but found ..." """
    mark = getattr(error, "problem_mark", None)
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    return f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else "")


def server(config: dict[str, Any], name: str) -> dict[str, Any]:
    for s in config["servers"]:
        if s["name"] == name:
            return s
    known = ", ".join(s["name"] for s in config["servers"])
    raise ConfigError(f"servers: no server named {name!r} (known: {known})")


def timezone(config: dict[str, Any]) -> ZoneInfo:
    return ZoneInfo(config["timezone"])
