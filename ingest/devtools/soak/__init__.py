"""`make soak`: the whole system on this machine under a seeded storm of faults, checked
against a ledger that does not trust the code under test.

- ``world``: the stream stand-in (with its ledger), two collectors (server2 on a "secondary"
  reached through rsync over a loopback sshd), the OSF and SMTP stand-ins, the vault on a
  small tmpfs with two replicas (server2 over the same sshd, usb a local folder), the
  primary's workflow run as cron runs it, every ``interval`` seconds, and the operator's
  scrubs and restores;
- ``faults``: the injector (``SEED``); it records every fault and when each collector was down;
- ``copies``: the vault's copies on disk: the bit flips, and whether the copies agree;
- ``traces``: what an operator would see (status files, alerts, pull state, OSF back-off,
  mails, cron output, replicate job logs, scrub and restore output, stats), and whether each
  fault left a trace there;
- ``ledger``: the final checks and the table;
- ``collector``: ``sampled-stream collect`` with a clock the injector can step.

Run ``python -m ingest.devtools.soak --help``.
"""
