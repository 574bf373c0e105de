"""The run's end (ingest.workflow_run.cancel_timers): nothing left waiting delays the exit."""

import threading

from ingest.workflow_run import cancel_timers


def test_the_runs_pending_timers_are_cancelled_not_waited_for():
    fired = []
    # What Snakemake's scheduler leaves behind: a timer armed for a next look (a long one
    # here, so that only a cancel can end it within the test).
    timer = threading.Timer(600, fired.append, args=["scheduled"])
    timer.start()
    worker = threading.Thread(target=threading.Event().wait, args=(0.1,))  # not a timer
    worker.start()

    assert cancel_timers() == 1
    timer.join(timeout=30)
    worker.join()
    assert not timer.is_alive()  # Python would have joined it for ten minutes at exit
    assert fired == []
