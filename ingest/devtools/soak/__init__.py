"""`make soak`: the whole system on this machine under a seeded storm of faults, checked
against a ledger that does not trust the code under test.

- ``world``: the stream stand-in (with its ledger), two collectors (server2 on a "secondary"
  reached through rsync over a loopback sshd), the OSF and SMTP stand-ins, the vault on a
  small tmpfs, and the primary's workflow run as cron runs it, every ``interval`` seconds;
- ``faults``: the injector (``SEED``); it records every fault and when each collector was down;
- ``traces``: what an operator would see (status files, alerts, pull state, OSF back-off,
  mails, cron output, stats), and whether each fault left a trace there;
- ``ledger``: the final checks and the table;
- ``collector``: ``sampled-stream collect`` with a clock the injector can step.

Run ``python -m ingest.devtools.soak --help``.
"""
