"""A throwaway OpenSSH server on 127.0.0.1 for a real ssh hop (rsync pulls): tests and the soak.

Everything it needs lives in a given directory: host key, client key, authorized_keys,
sshd_config, pid file and log, and ``known_hosts`` pinning its host key (what an operator puts
in a server's ``known_hosts_file``: clients check it strictly, never learn a key). It logs in
the user running it (root in CI), with the throwaway client key only. ``start_sshd(dir)``
starts it; ``stop()`` and ``restart()`` (same port and keys: a secondary that went away and came
back) control it. The tests use it as the ``sshd`` fixture (tests/sshd.py).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
# sshd (as root) refuses to start without its privilege separation directory; Debian creates it
# from the systemd unit, which a container or CI machine never runs.
PRIVSEP_DIR = Path("/run/sshd")


class SshdUnavailable(RuntimeError):
    pass


@dataclass
class Sshd:
    host: str
    port: int
    user: str
    key_file: Path  # private key of the throwaway client identity
    known_hosts: Path  # its host key for [127.0.0.1]:port, written at start
    workdir: Path
    log_file: Path
    proc: subprocess.Popen = field(repr=False)

    @property
    def target(self) -> str:
        return f"{self.user}@{self.host}"

    def ssh_args(self) -> list[str]:
        """Options for a plain ``ssh`` call to this server (ingest.pull.rsync makes its own)."""
        return [
            "-i",
            str(self.key_file),
            "-p",
            str(self.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
        ]

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def restart(self, timeout: float = 10.0) -> None:
        """Start it again on the same port with the same keys and config (after ``stop``)."""
        self.stop()
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.workdir / "sshd_config")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        if not _wait_for_banner(self.proc, self.port, time.monotonic() + timeout):
            raise SshdUnavailable(f"sshd not back on port {self.port}: {self.log()[-500:]}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sampled-stream-test", "-f", path],
        check=True,
        capture_output=True,
    )


def known_hosts_line(host: str, port: int, host_key: Path) -> str:
    """A known_hosts line for ``host:port`` with the public half of ``host_key``."""
    key_type, key = Path(f"{host_key}.pub").read_text().split()[:2]
    return f"[{host}]:{port} {key_type} {key}\n"


def _wait_for_banner(proc: subprocess.Popen, port: int, deadline: float) -> bool:
    """True once the server answers with an SSH banner; False if it died or timed out."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.settimeout(2)
                if s.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def start_sshd(workdir: Path, timeout: float = 10.0) -> Sshd:
    """Start sshd in the foreground (-D -e) on a free loopback port and check that the test key
    logs in; raise SshdUnavailable with the reason otherwise."""
    server = _start(workdir, timeout, use_pam=False)
    if _login_works(server):
        return server
    log = server.log()
    server.stop()
    if "account is locked" in log:
        # Without PAM, sshd refuses accounts whose password is locked ('!' in /etc/shadow, as
        # root is on many installs); with PAM the key alone is enough.
        server = _start(workdir, timeout, use_pam=True)
        if _login_works(server):
            return server
        log = server.log()
        server.stop()
    raise SshdUnavailable(f"sshd started but the test key cannot log in; sshd log:\n{log[-2000:]}")


def _login_works(server: Sshd) -> bool:
    try:
        r = subprocess.run(
            ["ssh", *server.ssh_args(), server.target, "true"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


def _start(workdir: Path, timeout: float, use_pam: bool) -> Sshd:
    for tool in (SSHD, "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise SshdUnavailable(
                f"{tool} not found (install the Debian packages openssh-server and openssh-client)"
            )
    workdir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    host_key = workdir / "ssh_host_ed25519_key"
    client_key = workdir / "id_ed25519"
    for key in (host_key, client_key):
        if not key.exists():  # a second start (with PAM) keeps the keys
            _keygen(key)
    authorized = workdir / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    authorized.chmod(0o600)
    user = getpass.getuser()
    log_file = workdir / "sshd.log"

    last_error = ""
    for _attempt in range(3):  # the free port can be taken between probing and binding
        port = _free_port()
        config = workdir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {workdir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    # The temp dir's parents are not owned by the test user in every setup.
                    "StrictModes no",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    # Tests run as root in CI; key-only login keeps that safe on loopback.
                    "PermitRootLogin prohibit-password",
                    # PAM's session modules can fail in containers, so without PAM first.
                    f"UsePAM {'yes' if use_pam else 'no'}",
                    f"AllowUsers {user}",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        # -t checks the config and keys first, so a bad setup reports a readable reason.
        check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise SshdUnavailable(f"sshd -t rejected the test config: {check.stderr.strip()}")
        log = open(log_file, "ab")  # noqa: SIM115 - handed to the child process
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        if _wait_for_banner(proc, port, time.monotonic() + timeout):
            known_hosts = workdir / "known_hosts"
            known_hosts.write_text(known_hosts_line("127.0.0.1", port, host_key))
            return Sshd(
                host="127.0.0.1",
                port=port,
                user=user,
                key_file=client_key,
                known_hosts=known_hosts,
                workdir=workdir,
                log_file=log_file,
                proc=proc,
            )
        if proc.poll() is None:
            proc.terminate()
            proc.wait(5)
        last_error = log_file.read_text(errors="replace").strip()[-2000:]
    raise SshdUnavailable(f"sshd did not start on 127.0.0.1: {last_error or 'no output'}")
