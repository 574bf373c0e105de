"""The soak's world: every process and stand-in, their configs, and the cron-like workflow runs.

Layout under the soak's root::

    primary/raw/server1   server1's collector writes here (the primary's own minutes)
    primary/raw/server2   the primary's copy of server2's minutes (the pull target)
    primary/work          work_dir of the workflow (cron.log, logs/, state)
    primary/vault         vault_dir, a small tmpfs when the soak may mount one
    replica-server2       the vault's replica "server2", written over rsync + the loopback sshd
    replica-usb           the vault's replica "usb", a local folder (a second disk)
    secondary/raw/server2 server2's collector writes here; pulled over rsync + the loopback sshd
    ledger.jsonl          the stand-in's record of every tweet it made and wrote
    faults.jsonl          the injector's record of every fault
    runs/                 each workflow run's output, and each scrub's and restore's
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from aiosmtpd.controller import Controller

from ingest.devtools.mailsink import Sink, free_port
from ingest.devtools.osf_standin import OSFStandIn
from ingest.devtools.sshd import Sshd, start_sshd
from ingest.devtools.stack import REPO, FastClock, env, start_collector, start_stand_in

SERVERS = ("server1", "server2")
TIMEZONE = "Europe/Berlin"
CRONTAB = REPO / "config" / "cron" / "crontab.example"
TOKEN = "soak-token"
STAND_IN_SEED = 1  # its tweets, and its compliance answers (``ComplianceJobs.verdict``)
COLLECTOR_MODULE = "ingest.devtools.soak.collector"
# What the soak's config sets (clock minutes): short enough that a soak of a few stream hours
# lives through outages longer than each of them.
SECONDARY_WAIT_MINUTES = 10
KEEP_RAW_HOURS = 1
VAULT_MB = 64
# The vault's replicas, as the README's example: server2 over ssh (the secondary's sshd, so an
# sshd outage takes both away) and a local folder.
SSH_REPLICA = "server2"
LOCAL_REPLICA = "usb"
REPLICAS = (SSH_REPLICA, LOCAL_REPLICA)
# scrub and restore stamp the run lock with the real time, the workflow's runs compare it with
# the fast clock's, hours ahead: a scrub holding the lock would look hung to every cron run.
# (The soak kills a hung run itself, after --run-timeout.)
RUN_LOCK_ALERT_MINUTES = 100_000
COMPLY_LOCK_WAIT_MINUTES = 2  # real minutes a compliance pass waits for a workflow run


def cron_command(config: Path, work_dir: Path, marker: str = "snakemake") -> str:
    """The documented cron line (config/cron/crontab.example) running ``marker`` (the workflow,
    or ``sampled-stream scrub``), on this machine's paths."""
    lines = [
        line
        for line in CRONTAB.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#") and marker in line
    ]
    if len(lines) != 1:
        raise RuntimeError(f"{CRONTAB}: expected one {marker} line, found {len(lines)}")
    command = lines[0].split(None, 5)[5]  # after the five schedule fields
    command = re.sub(r"\s*>>?\s*\S+(\s+2>&1)?\s*$", "", command)  # cron's log: ours per run
    for documented, here in (
        ("/etc/sampled-stream/config.yaml", str(config)),
        ("/opt/sampled-stream", str(REPO)),
        ("/data/work", str(work_dir)),
    ):
        command = command.replace(documented, here)
    if "/data/" in command or "/etc/sampled-stream" in command:
        raise RuntimeError(f"{CRONTAB}: a path the soak does not know in {command!r}")
    return command


@dataclass
class TimedSink(Sink):
    """The SMTP sink, also keeping when each mail arrived."""

    arrived: list[float] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.arrived.append(time.time())
        return await super().handle_DATA(server, session, envelope)

    def timed(self, start: int = 0) -> list[tuple[float, str, str]]:
        """(arrival, subject, body) of every mail from the ``start``-th on."""
        out = []
        for t, m in zip(self.arrived[start:], self.messages[start:], strict=False):
            body = m.get_body(preferencelist=("plain",))
            out.append((t, str(m["Subject"]), body.get_content() if body else ""))
        return out


@dataclass
class Run:
    """One workflow run (its own session, so the whole run can be killed at once)."""

    number: int
    why: str
    started: float
    proc: subprocess.Popen
    log: Path
    rc: int | None = None
    ended: float | None = None
    killed: str = ""

    def outcome(self) -> str:
        if self.killed:
            return "killed"
        if self.rc == 0:
            return "ok"
        text = self.log.read_text(errors="replace").strip() if self.log.exists() else ""
        # flock -n exits 1 silently; the workflow's own lock says so.
        busy = not text or "another workflow run is going" in text
        return "lock busy" if busy else "failed"

    def processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process still in this run's session."""
        found = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
                sid = int(stat.rsplit(")", 1)[1].split()[3])
                if sid == self.proc.pid:
                    cmd = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ")
                    found.append((int(entry.name), cmd.decode(errors="replace")))
            except (OSError, IndexError, ValueError):
                continue
        return found

    def kill(self, why: str) -> None:
        """kill -9 every process of the run, as a power cut or the OOM killer would."""
        self.killed = why
        for pid, _ in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class Tool(Run):
    """A ``sampled-stream`` command an operator (or cron's weekly line) runs: scrub, restore,
    comply."""

    kind: str = ""

    def outcome(self) -> str:
        if self.killed:
            return "killed"
        if self.rc is None:
            return "running"
        return "ok" if self.rc == 0 else f"exit {self.rc}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class World:
    root: Path
    clock: FastClock
    rate: float
    interval: float  # real seconds between cron runs
    run_timeout: float
    mails: TimedSink = field(default_factory=TimedSink)
    runs: list[Run] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    collectors: dict[str, subprocess.Popen] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # -- setup ---------------------------------------------------------------------------------

    @property
    def primary(self) -> Path:
        return self.root / "primary"

    def raw_dirs(self) -> dict[str, Path]:
        """Every raw dir the soak watches: the primary's two and the secondary's own."""
        return {
            "server1": self.primary / "raw" / "server1",
            "server2 (primary's copy)": self.primary / "raw" / "server2",
            "server2 (on the secondary)": self.root / "secondary" / "raw" / "server2",
        }

    def machine_work(self, server: str) -> Path:
        """work_dir of the machine whose collector ``server`` is."""
        return self.work if server == "server1" else self.root / "secondary" / "work"

    def status_file(self, server: str) -> Path:
        return self.machine_work(server) / "status" / f"{server}.json"

    def alert_state_files(self) -> list[Path]:
        """The workflow's alert state and each collector's (what the health view lists)."""
        collectors = [self.status_file(s).with_name(f"{s}.alerts.json") for s in SERVERS]
        return [self.work / "state" / "alerts.json", *collectors]

    def pull_state_file(self, server: str) -> Path:
        return self.work / "state" / f"rsync_{server}.json"

    def osf_backoff_files(self) -> list[Path]:
        return sorted((self.work / "osf").rglob("*.backoff"))

    def collector_raw_dir(self, server: str) -> Path:
        if server == "server1":
            return self.primary / "raw" / "server1"
        return self.root / "secondary" / "raw" / "server2"

    @property
    def vault(self) -> Path:
        return self.primary / "vault"

    def copies(self) -> dict[str, Path]:
        """Every copy of the vault: the primary's and each replica's folder."""
        return {"primary": self.vault, **self.replica_dirs()}

    def replica_dirs(self) -> dict[str, Path]:
        """Each replica's folder (the ssh replica's is on this machine too, behind the loopback
        sshd)."""
        return {r: self.root / f"replica-{r}" for r in REPLICAS}

    @property
    def work(self) -> Path:
        return self.primary / "work"

    def start(self) -> None:
        for d in (self.root / "logs", self.root / "runs", self.work, self.vault):
            d.mkdir(parents=True, exist_ok=True)
        for d in self.raw_dirs().values():
            d.mkdir(parents=True, exist_ok=True)
        for d in self.copies().values():  # a local replica's folder must exist (mounted)
            d.mkdir(parents=True, exist_ok=True)
        self.vault_mounted = self._mount_vault()
        self.sshd: Sshd = start_sshd(self.root / "sshd")
        self.osf = OSFStandIn().start()
        self.smtp_port = free_port()
        self.smtp: Controller | None = None
        self.smtp_up()
        self.stand_in, self.url = start_stand_in(
            self.root / "logs",
            self.clock,
            TOKEN,
            rate=self.rate,
            keepalive=0.5,
            extra=("--ledger", str(self.root / "ledger.jsonl"), "--seed", str(STAND_IN_SEED)),
        )
        if not self.url:
            raise RuntimeError(f"the stream stand-in did not start: see {self.root}/logs")
        self.config = self._write_config("primary", list(SERVERS))
        self.secondary_config = self._write_config("secondary", ["server2"])
        self.cron = cron_command(self.config, self.work)
        self.scrub_command = cron_command(self.config, self.work, "sampled-stream scrub")
        self.comply_command = cron_command(self.config, self.work, "sampled-stream comply")
        for server in SERVERS:
            self.start_collector(server)

    def _mount_vault(self) -> bool:
        """A small tmpfs for the vault, so the injector can fill its disk (root only)."""
        if os.geteuid() != 0:
            self.notes.append("not root: no tmpfs vault, no disk-full faults")
            return False
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={VAULT_MB}m,mode=0750", "tmpfs", self.vault],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            self.notes.append(f"no tmpfs vault ({r.stderr.strip()}): no disk-full faults")
        return r.returncode == 0

    def _write_config(self, machine: str, servers: list[str]) -> Path:
        token = self.root / "bearer_token"
        token.write_text(TOKEN + "\n")
        token.chmod(0o600)
        osf_token = self.root / "osf_token"
        osf_token.write_text(self.osf.token + "\n")
        osf_token.chmod(0o600)
        entries: list[dict[str, Any]] = []
        for name in servers:
            if machine == "secondary":
                entries.append({"name": name, "raw_dir": str(self.collector_raw_dir(name))})
            elif name == "server1":
                entries.append({"name": name, "raw_dir": str(self.primary / "raw" / name)})
            else:
                entries.append(self._pulled_entry(name))
        config = {
            "timezone": TIMEZONE,
            "vault_dir": str(self.vault),
            "work_dir": str(self.work if machine == "primary" else self.root / machine / "work"),
            "servers": entries,
            "secondary_wait_minutes": SECONDARY_WAIT_MINUTES,
            "retention": {"keep_raw_hours": KEEP_RAW_HOURS},
            "stream": {"url": self.url, "bearer_token_file": str(token), "stall_seconds": 2},
            "osf": {
                "enabled": True,
                "project": self.osf.project,
                "token_file": str(osf_token),
                "api_url": self.osf.api_url,
                "request_interval_seconds": 0,
                "retry_base_seconds": 0.05,
            },
            "email": {
                "enabled": True,
                "smtp_host": "127.0.0.1",
                "smtp_port": self.smtp_port,
                "security": "none",
                "from": f"{machine}@soak.invalid",
                "to": ["researcher@soak.invalid"],
                "alert_after_minutes": 1,
            },
        }
        if machine == "primary":
            config["vault_replicas"] = self._replica_entries()
            config["run_lock_alert_minutes"] = RUN_LOCK_ALERT_MINUTES
            # The stand-in's jobs take two polls: real seconds here, not X's minutes.
            config["comply"] = {
                "poll_seconds": 0.2,
                "backoff_scale": 0.01,
                "lock_wait_minutes": COMPLY_LOCK_WAIT_MINUTES,
            }
        path = self.root / f"{machine}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _pulled_entry(self, name: str) -> dict[str, Any]:
        entry = {
            "name": name,
            "raw_dir": str(self.primary / "raw" / name),
            "rsync_from": f"{self.sshd.target}:{self.collector_raw_dir(name)}/",
            "ssh_key_file": str(self.sshd.key_file),
            "ssh_port": self.sshd.port,
        }
        schema = yaml.safe_load((REPO / "ingest/schemas/config.schema.yaml").read_text())
        server_keys = schema["properties"]["servers"]["items"]["properties"]
        if "known_hosts_file" in server_keys:  # pinned host keys (issue 10 item 9)
            entry["known_hosts_file"] = str(self._known_hosts())
        return entry

    def _known_hosts(self) -> Path:
        """The loopback sshd's host key, pinned (what an operator puts in known_hosts_file)."""
        host_key = (self.sshd.workdir / "ssh_host_ed25519_key.pub").read_text().split()
        known = self.root / "known_hosts"
        known.write_text(f"[127.0.0.1]:{self.sshd.port} {host_key[0]} {host_key[1]}\n")
        return known

    def _replica_entries(self) -> list[dict[str, Any]]:
        """server2 over the sshd the pull uses (same key, port, pinned host key), usb local."""
        copies = self.copies()
        remote = {
            "name": SSH_REPLICA,
            "target": f"{self.sshd.target}:{copies[SSH_REPLICA]}",
            "ssh_key_file": str(self.sshd.key_file),
            "ssh_port": self.sshd.port,
            "known_hosts_file": str(self._known_hosts()),
        }
        return [remote, {"name": LOCAL_REPLICA, "target": str(copies[LOCAL_REPLICA])}]

    # -- the parts the injector breaks ---------------------------------------------------------

    def start_collector(self, server: str) -> None:
        config = self.config if server == "server1" else self.secondary_config
        self.collectors[server] = start_collector(
            config,
            server,
            self.clock,
            self.root / "logs" / f"collector-{server}.log",
            module=COLLECTOR_MODULE,
            extra=(str(self.offset_file(server)),),
        )

    def offset_file(self, server: str) -> Path:
        return self.root / f"clock-offset-{server}"

    def collector_up(self, server: str) -> bool:
        p = self.collectors.get(server)
        return p is not None and p.poll() is None

    def smtp_up(self) -> None:
        if self.smtp is None:
            self.smtp = Controller(self.mails, hostname="127.0.0.1", port=self.smtp_port)
            self.smtp.start()

    def smtp_down(self) -> None:
        if self.smtp is not None:
            self.smtp.stop()
            self.smtp = None

    # -- the workflow, as cron runs it -------------------------------------------------------

    def start_run(self, why: str) -> Run:
        number = len(self.runs) + 1
        now: datetime = self.clock.now()
        command = self.cron + f" --config now={now.isoformat(timespec='seconds')}"
        log = self.root / "runs" / f"{number:05d}-{why}.log"
        # The fast clock's "now" is for tests only; the workflow insists on this.
        proc = self._spawn(command, log, {"SAMPLED_STREAM_TEST_CLOCK": "1"})
        run = Run(number, why, time.time(), proc, log)
        self.runs.append(run)
        return run

    def active_runs(self) -> list[Run]:
        return [r for r in self.runs if r.rc is None]

    def active_tools(self) -> list[Tool]:
        return [t for t in self.tools if t.rc is None]

    def poll_runs(self) -> None:
        for run in [*self.active_runs(), *self.active_tools()]:
            rc = run.proc.poll()
            if rc is not None:
                run.rc, run.ended = rc, time.time()
            elif time.time() - run.started > self.run_timeout:
                run.kill(f"hung for more than {self.run_timeout:.0f} s")
                what = f"{run.kind} {run.number}" if isinstance(run, Tool) else f"run {run.number}"
                self.notes.append(f"{what} hung: killed after {self.run_timeout:.0f} s")

    def wait_runs(self) -> None:
        while self.active_runs():
            self.poll_runs()
            time.sleep(0.2)

    # -- scrub and restore, as the operator (or cron's weekly line) runs them ------------------

    def start_tool(self, kind: str, why: str, command: str) -> Tool:
        """``command`` (a shell line, as cron or an operator types it) in its own session."""
        number = len(self.tools) + 1
        log = self.root / "runs" / f"{kind}-{number:03d}-{why}.log"
        tool = Tool(number, why, time.time(), self._spawn(command, log), log, kind=kind)
        self.tools.append(tool)
        return tool

    def _spawn(
        self, command: str, log: Path, extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """A shell line as cron runs it, in its own session (killed whole), output to ``log``;
        PATH starts with the project's .venv/bin (this Python's), as cron's does."""
        with open(log, "wb") as out:
            return subprocess.Popen(
                command,
                shell=True,
                cwd=self.work,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={
                    **env(),
                    "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
                    **(extra_env or {}),
                },
            )

    def start_scrub(self, why: str) -> Tool:
        return self.start_tool("scrub", why, self.scrub_command)

    def start_comply(self, why: str) -> Tool:
        """``sampled-stream comply`` over every day, as the weekly cron line runs it."""
        return self.start_tool("comply", why, self.comply_command)

    def comply_state(self) -> Path:
        """A pass's state: there while a pass is open (killed, or an hour not rewritten)."""
        return self.work / "comply" / "state.json"

    def start_restore(self, replica: str, day: str) -> Tool:
        command = (
            f"umask 027; sampled-stream restore --config {self.config} --from {replica} "
            f"--days {day}"
        )
        return self.start_tool("restore", day, command)

    def wait_tools(self) -> None:
        while self.active_tools():
            self.poll_runs()
            time.sleep(0.2)

    # -- teardown --------------------------------------------------------------------------------

    def stop_collectors(self) -> None:
        for p in self.collectors.values():
            if p.poll() is None:
                p.terminate()
        for p in self.collectors.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()

    def stop(self) -> None:
        for run in [*self.active_runs(), *self.active_tools()]:
            run.kill("soak stopped")
        self.stop_collectors()
        if self.stand_in.poll() is None:
            self.stand_in.terminate()
            self.stand_in.wait(10)
        self.smtp_down()
        self.osf.stop()
        self.sshd.stop()

    def unmount_vault(self, keep: Path) -> None:
        """Copy the vault to ``keep`` (for a look afterwards), then unmount the tmpfs."""
        if self.vault_mounted:
            subprocess.run(["cp", "-a", f"{self.vault}/.", str(keep)], check=False)
            subprocess.run(["umount", self.vault], check=False)
            self.vault_mounted = False
