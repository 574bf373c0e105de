"""The hourly build on the primary: raw minute files -> per-minute intermediates -> the vault.

Kept free of imports, so that ``python -m ingest.hours.minutes`` (by hand, or one process per file
in the benchmark's "parts") starts lean.
"""
