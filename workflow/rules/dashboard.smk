# The dashboard, the health and the metrics file (issue 12; ingest.observe.dashboard): when
# the run ends, whatever ended it, the main process that holds the run lock records the run,
# assesses the health (a lasting failure is mailed), writes the Prometheus text file and
# rewrites the dashboard pages of the days that changed. onsuccess and onerror (Snakefile)
# set the result; a run with nothing to do, or one that failed before any job, sets none.
from ingest.observe.dashboard import RunEnd  # noqa: E402

RUN_END = RunEnd(config, NOW, RUN, WATCH).install() if WRITES else None


def run_ended(result):
    if RUN_END is not None:
        RUN_END.result = result
