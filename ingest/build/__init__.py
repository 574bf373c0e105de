"""The hourly build on the primary: raw minute files -> per-minute intermediates -> the vault.

Kept free of imports: ``python -m ingest.build.minutes`` is started per file and must stay lean.
"""
