# Config validation, the run's plan, and the input functions of every rule.
import os
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The ingest package sits next to workflow/; jobs (shell and script) find it through
# PYTHONPATH, so the workflow works with or without `pip install -e .`.
REPO = str(Path(workflow.basedir).parent)
sys.path.insert(0, REPO)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))

from ingest import layout, plan as planning  # noqa: E402
from ingest.config import ConfigError, check_semantics, normalize  # noqa: E402

if not config:
    raise WorkflowError("no config given: run with --configfile config/config.yaml")
normalize(config)
validate(config, schema="../schemas/config.schema.yaml")
try:
    check_semantics(config)
except ConfigError as e:
    raise WorkflowError(str(e)) from None

TZ = ZoneInfo(config["timezone"])
NOW = layout.clock_from(config.get("now")).now()
RUN = NOW.strftime("%Y%m%dT%H%M%S")
WORK = planning.work_paths(config["work_dir"])
VAULT = Path(config["vault_dir"])
SERVERS = {s["name"]: s for s in config["servers"]}
PULLED = [name for name, s in SERVERS.items() if s.get("rsync_from")]
PYTHON = sys.executable
PLAN = planning.make_plan(config, NOW, planning.pull_state(WORK["state"], PULLED))
BUILD = set(PLAN.build)

wildcard_constraints:
    server="|".join(SERVERS),
    day=r"\d{4}-\d{2}-\d{2}",
    hh=r"\d{2}",
    stem=r"[^/]+",


def hour_of(wildcards):
    return layout.Hour(wildcards.day, int(wildcards.hh))


def vault_file(kind):
    """Output pattern of one of an hour's vault files (ids, tweets, users, stats)."""
    return str(VAULT / "{day}" / ("{day}_{hh}_" + layout.VAULT_SUFFIXES[kind]))


def raw_minute(wildcards):
    return str(Path(SERVERS[wildcards.server]["raw_dir"]) / wildcards.day / wildcards.hh / f"{wildcards.stem}.jsonl")


def hour_inputs(wildcards):
    """The per-minute intermediates of every server in the hour's read window.

    Hours this run does not (re)build get no inputs, so Snakemake leaves their files alone
    even though their intermediates are long gone.
    """
    hour = hour_of(wildcards)
    if hour not in BUILD:
        return {}
    for server in PULLED:  # the secondary's minutes are known only after its pull
        checkpoints.pull.get(server=server, run=RUN)
    files = planning.window_files(config, hour)
    return {
        f"{server}__{kind}": [str(planning.intermediate(config["work_dir"], f, kind)) for f in fs]
        for server, fs in files.items()
        for kind in ("tweets", "users")
    }


def day_stats(wildcards):
    """Stats of the day's hours built in this run: a new one makes the report stale."""
    return [str(layout.vault_paths(VAULT, h)["stats"]) for h in PLAN.build if h.day == wildcards.day]


def all_targets():
    targets = [str(WORK["pulls"] / server / f"{RUN}.json") for server in PULLED]
    for h in PLAN.build:
        targets += [str(p) for p in layout.vault_paths(VAULT, h).values()]
    targets += [str(planning.intermediate(config["work_dir"], f, k)) for f in PLAN.ahead for k in ("tweets", "users")]
    targets += [str(layout.report_path(VAULT, d)) for d in PLAN.reports]
    targets += [str(WORK["osf"] / h.day / f"{h.label}.json") for h in PLAN.uploads]
    targets += [str(WORK["mail"] / f"{d}.sent") for d in PLAN.mails]
    return targets


def retention_cleanup():
    from ingest.retention import clean

    summary = clean(config, NOW)
    if summary.intermediates_removed or summary.raw_removed:
        print(f"retention: removed {summary.intermediates_removed} intermediates, {summary.raw_removed} raw minute files")


def mail_failure(log_path):
    if config["email"]["enabled"]:
        from ingest.jobs import failure_mail

        failure_mail(config, NOW, log_path)


def describe_plan():
    """One line per kind of pending work: what `snakemake -n` should make obvious."""
    lines = [f"plan at {NOW.isoformat()}:"]
    for what, items in [
        ("hours to build", [h.label for h in PLAN.build]),
        ("hours waiting for a secondary", [h.label for h in PLAN.waiting]),
        ("uploads to OSF", [h.label for h in PLAN.uploads]),
        ("day reports to mail", PLAN.mails),
    ]:
        if items:
            lines.append(f"  {what} ({len(items)}): {', '.join(items)}")
    if PLAN.ahead:
        lines.append(f"  minute files to parse ahead of their hour: {len(PLAN.ahead)}")
    if len(lines) == 1:
        lines.append("  nothing pending")
    return "\n".join(lines)


print(describe_plan(), file=sys.stderr)
