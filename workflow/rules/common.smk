# Config validation, the run's plan, and the input functions of every rule.
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The ingest package sits next to workflow/; jobs (shell and script) find it through
# PYTHONPATH, so the workflow works with or without `pip install -e .`.
REPO = str(Path(workflow.basedir).parent)
sys.path.insert(0, REPO)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))


# Declared so that Snakemake passes it on to every job (snakemake --lint asks for it).
envvars:
    "PYTHONPATH",


from ingest import clock, layout, perms  # noqa: E402
from ingest.hours import plan as planning  # noqa: E402
from ingest.hours import resources as build_resources  # noqa: E402
from ingest.receipts import build_receipt, report_receipt  # noqa: E402
from ingest.vault import day as vault_day  # noqa: E402
from ingest.vault import records  # noqa: E402
from ingest.vault import replicate as replication  # noqa: E402
from ingest.config import ConfigError, check_now, validate_config  # noqa: E402
from ingest.notify import notify_once  # noqa: E402
from ingest.workflow_run import RunWatch, take_run_lock  # noqa: E402

# Files 0640, folders 0750, whatever the umask of cron or the shell (jobs inherit it).
perms.restrict_umask()
DRY_RUN = workflow.output_settings.dryrun
# The main process of a run that writes (not `-n`, not a job): it takes the run lock and
# mails its failure, at any stage from here on (onerror alone misses this file's own errors).
WRITES = workflow.is_main_process and not DRY_RUN
WATCH = RunWatch(config).install() if WRITES else None

if not config:
    raise WorkflowError("no config given: run with --configfile config/config.yaml")
try:
    # Against the package's schema, defaults filled in; an error names the file, the key and
    # the reason in a line each (Snakemake's own validate printed the schema around it).
    validate_config(config, " + ".join(str(f) for f in workflow.configfiles) or "config")
    check_now(config, DRY_RUN)
    if problem := planning.hours_range_error(config.get("hours")):
        raise ConfigError(problem)
except ConfigError as e:
    raise WorkflowError(str(e)) from None

NOW = clock.clock_from(config.get("now")).now()
if WRITES:
    WATCH.now = NOW
    for problem in perms.secure_dirs(config):
        print(problem, file=sys.stderr)
    # One run at a time per work_dir, however started (cron, by hand): held until exit.
    RUN_LOCK = take_run_lock(config, datetime.now(UTC))
    if RUN_LOCK is None:
        sys.exit(75)  # EX_TEMPFAIL: another run is going; it said who, nothing was done
    # An hour's commit a crash cut short is finished first: the plan then sees it whole.
    UNSETTLED = vault_day.settle_vault(Path(config["vault_dir"]))
# Names this invocation's receipts (pull, parse); real time, unlike NOW, so runs never share one.
RUN = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
# A job on a cluster node parses this file again: it must name its outputs after the run that
# submitted it (sbatch passes the environment on; envvars for executors that do not).
if workflow.is_main_process:
    os.environ["SAMPLED_STREAM_RUN"] = RUN
else:
    RUN = os.environ.get("SAMPLED_STREAM_RUN", RUN)


envvars:
    "SAMPLED_STREAM_RUN",


WORK = layout.work_paths(config["work_dir"])
VAULT = Path(config["vault_dir"])
SERVERS = {s["name"]: s for s in config["servers"]}
PULLED = [name for name, s in SERVERS.items() if s.get("rsync_from")]
# The plan from what is on disk before this run's pulls: what `-n` prints. With pulled servers
# the run's targets are planned again once the pulls are done (run_plan). A job on a cluster
# node has none to make (its hour and inputs are given): a month's plan costs seconds a job.
PLAN = (
    planning.make_plan(config, NOW, planning.pull_state(WORK["state"], PULLED))
    if workflow.is_main_process
    else planning.Plan()
)
if WRITES:
    PLAN.warnings += UNSETTLED
_AFTER_PULLS = {}
if WRITES and PLAN.warnings:
    notify_once(
        config,
        "plan",
        PLAN.warnings,
        "the hourly build skipped or rebuilds something",
        "The workflow's plan found what follows (each is mailed once; the run goes on):",
        NOW,
    )


wildcard_constraints:
    server="|".join(SERVERS),
    day=r"\d{4}-\d{2}-\d{2}",
    hh=r"\d{2}",


def hour_of(wildcards):
    return layout.Hour(wildcards.day, int(wildcards.hh))


def built(hour):
    """This run's receipt of building ``hour`` (build_hour's output)."""
    return str(build_receipt(config["work_dir"], hour.day, f"{hour.hh:02d}", RUN))


def reported(day):
    """This run's receipt of ``day``'s report (day_report's output)."""
    return str(report_receipt(config["work_dir"], day, RUN))


def hour_inputs(wildcards):
    """The per-minute intermediates of every server in the hour's read window; in a backfill
    (config ``hours``), the window's raw minute files, which the job parses itself.

    Hours this run does not (re)build get no inputs (the job then refuses to run). A job on a
    cluster node (not the main process) trusts the main process's plan: its own would redo
    the pulls' checkpoints, which only the main process can.
    """
    hour = hour_of(wildcards)
    # The secondary's minutes are known only after its pull.
    if workflow.is_main_process and hour not in run_plan().build:
        return {}
    if BACKFILL:
        return {
            f"{server}__raw": [str(f.path) for f in fs]
            for server, fs in planning.window_files(config, hour).items()
        }
    checkpoints.parse_minutes.get(run=RUN)  # the intermediates exist once it has run
    # A raw file the parse skipped (unreadable: named in its log and mailed) has none; the
    # hour is built without it and again once it can be read.
    files = {
        server: [f for f in fs if planning.intermediate(config["work_dir"], f, "tweets").exists()]
        for server, fs in planning.window_files(config, hour).items()
    }
    return {
        f"{server}__{kind}": [str(planning.intermediate(config["work_dir"], f, kind)) for f in fs]
        for server, fs in files.items()
        for kind in ("tweets", "users")
    }


# Backfill: the hours given are independent jobs, each parsing its own minute files (scripts/
# build_hour.py, ingest.hours.backfill); no run-wide parse step.
BACKFILL = bool(config.get("hours"))
# Beyond this many hours a run gives each build one core without weighing their inputs.
MANY_HOURS_PER_CORE = 2
_HOUR_BYTES = {}


def run_cores():
    """The run's --cores (1 when Snakemake was given none, e.g. `-n` without the profile)."""
    try:
        return int(workflow.cores)
    except (WorkflowError, TypeError, ValueError):
        return 1


def hour_bytes(hour):
    """The raw minute files' bytes in the hour's read window (what its build reads, parses)."""
    if hour not in _HOUR_BYTES:
        files = planning.window_files(config, hour).values()
        _HOUR_BYTES[hour] = sum(os.path.getsize(f.path) for fs in files for f in fs)
    return _HOUR_BYTES[hour]


def build_threads(wildcards):
    """Cores for a build_hour job (ingest.hours.resources.job_threads): on one machine its share
    of the run's cores by its share of the run's input (one hour alone gets every core, many
    one each); on a cluster backfill_threads or 1, the same in the main process that asks for
    the job's slot and in the job itself. backfill_threads, when set, fixes it for a backfill."""
    fixed = config["backfill_threads"] if BACKFILL else 0
    cores = run_cores()
    local = workflow.local_exec
    hours = PLAN.build
    if fixed or not local or not workflow.is_main_process or not hours:
        return build_resources.job_threads(cores, 1.0, fixed, local)
    if len(hours) > MANY_HOURS_PER_CORE * cores:
        return 1
    total = sum(hour_bytes(h) for h in hours)
    share = hour_bytes(hour_of(wildcards)) / total if total else 1 / len(hours)
    return build_resources.job_threads(cores, share)


def day_builds(wildcards):
    """This run's receipts of the day's (re)built hours: the report waits for them, then reads
    the stats of every built hour of the day from the vault (vault files are never a rule's
    output, so Snakemake never backs one up or writes it)."""
    return [built(h) for h in run_plan().build if h.day == wildcards.day]


def upload_inputs(wildcards):
    """What an hour's upload waits for: this run's build, report and manifest receipts when it
    (re)builds them, else the vault files as they are (the manifest goes along if there is one),
    and the hour's record: a new generation the run did not build (a compliance pass) is newer
    than the upload's receipt, so the upload the plan lists as due runs again."""
    hour, plan = hour_of(wildcards), run_plan()
    if hour.day in plan.reports:
        day = {
            "report": reported(hour.day),
            "manifest": str(replication.manifest_receipt(config["work_dir"], hour.day, RUN)),
        }
    else:
        day = {"report": report_file(hour.day)}
    if hour in plan.build:
        return {"ids": built(hour), **day}
    record = records.record_path(VAULT, hour)
    found = {"record": str(record)} if record.exists() else {}
    return {"ids": vault_path(hour, "ids"), **day, **found}


def mail_inputs(wildcards):
    """What a day's mail waits for: this run's report receipt, or the report as it is."""
    day = wildcards.day
    return reported(day) if day in run_plan().reports else report_file(day)


def vault_path(hour, kind):
    return str(layout.vault_paths(VAULT, hour)[kind])


def report_file(day):
    return str(layout.report_path(VAULT, day))


def run_plan():
    """The plan this run carries out: with pulled servers, made again once their pulls are done.

    Until this run's pull checkpoints have finished, checkpoints.pull.get raises and Snakemake
    runs them first. Planned again because the pulls change the plan: a pull that just failed
    holds complete hours back (secondary_wait_minutes) instead of letting them be built without
    the secondary, and minute files a secondary delivers late rebuild their hours in this run.
    """
    if not PULLED:
        return PLAN
    if "plan" not in _AFTER_PULLS:
        for server in PULLED:
            checkpoints.pull.get(server=server, run=RUN)
        after = planning.make_plan(config, NOW, planning.pull_state(WORK["state"], PULLED))
        _AFTER_PULLS["plan"] = after
        print(describe_plan(after, "after pulling " + ", ".join(PULLED)), file=sys.stderr)
    return _AFTER_PULLS["plan"]


def targets_of(plan):
    targets = [str(WORK["pulls"] / server / f"{RUN}.json") for server in PULLED]
    targets += [built(h) for h in plan.build]
    if (plan.to_parse or PULLED) and not BACKFILL:
        targets.append(str(WORK["parsed"] / f"{RUN}.json"))
    targets += [reported(d) for d in plan.reports]
    targets += [str(WORK["osf"] / h.day / f"{h.label}.json") for h in plan.uploads]
    targets += [str(WORK["mail"] / f"{d}.sent") for d in plan.mails]
    # Manifests and copies to the replicas (workflow/rules/replicate.smk).
    targets += replication.workflow_targets(config, plan, copies_of(plan), RUN)
    return targets


def all_targets():
    """Inputs of `all`: the plan's targets; with pulled servers an input function, so that
    the targets are those of the plan made after the pulls (see run_plan)."""
    if not PULLED:
        return targets_of(PLAN)
    return [lambda wildcards: targets_of(run_plan())]


def retention_cleanup():
    from ingest.hours.retention import clean

    summary = clean(config, NOW)
    if summary.intermediates_removed or summary.raw_removed:
        removed = f"{summary.intermediates_removed} intermediates, {summary.raw_removed} raw"
        print(f"retention: removed {removed} minute files")
    if summary.raw_held:
        print(f"retention: kept {summary.raw_held} raw minute files until every replica has them")


def end_scheduling():
    """The run is over: its scheduler's pending timers would only delay the exit."""
    from ingest.workflow_run import cancel_timers

    cancel_timers()


def mail_failure(log_path):
    if WATCH is not None:
        WATCH.on_error(log_path)


def describe_plan(plan, when=""):
    """What `snakemake -n` prints: every kind of pending work (ingest.hours.plan.describe)."""
    return planning.describe(plan, NOW, when, copies_of(plan), PULLED if plan is PLAN else [])


_COPIES = {}


def copies_of(plan):
    """Each replica's hours to copy for ``plan``: looked up once a plan (the dry run's
    summary and the targets both need them)."""
    if id(plan) not in _COPIES:
        built = planning.built_hours(VAULT)
        _COPIES[id(plan)] = replication.pending_copies(config, plan, built, NOW)
    return _COPIES[id(plan)]


if workflow.is_main_process:
    print(
        describe_plan(PLAN, f"(before pulling {', '.join(PULLED)})" if PULLED else ""),
        file=sys.stderr,
    )
