"""Action runs: starting them, approvals, Port's reporting API, and finishing them from outside.

The package's public names are the ones imported here; the modules behind them, by what they hold:

    states      statuses, run ids, the row a new run gets, the errors a refused change raises (pure)
    requests    the bodies callers send: a run, a decline, a report (PATCH), a log line (pure)
    views       runs and logs as the API shows them, and the runs list's cursor
    listeners   RunChange, RunListener, and the watched transaction that hands changes to it
    store       the statements that write runs, logs and deliveries (shared with the automations)
    bodies      what a run's webhook carries: its entities checked and expanded, its request rendered
    service     Runs: start, approve, decline, read; report through the module below
    reporting   Port's PATCH and logs, masked with the run's secrets
    finishing   finish_run_from_pipeline, fail/succeed_run_for_delivery, expire_stale_runs

A run is stored together with its delivery, in one transaction: either the run exists and its
webhook will be sent, or neither happened. So a crash between "run recorded" and "webhook
queued" cannot leave a run that waits forever for a pipeline nobody triggered.

Secret inputs: clear only in memory; sealed in ``action_runs.secrets`` (see
:mod:`kiosk.actions.secrets`) until the run finishes, then dropped; sealed in the stored delivery
body too (``deliveries.body``, bound to the delivery id), which only the delivery worker opens, in
memory, to send it — the pipeline needs them in clear on the wire, nowhere else. ``"****"`` in every
answer; registered with the log redaction the moment they are read.

Synchronized WEBHOOK actions (``synchronized: true``) take the receiver's HTTP answer as the
run's result: the delivery worker finishes the run (:func:`succeed_run_for_delivery`) when it is
delivered, :func:`fail_run_for_delivery` when it dies. Other runs stay IN_PROGRESS after their
delivery: the pipeline reports back.
"""

from kiosk.actions.runs.finishing import (
    describe_duration,
    describe_http_status,
    expire_stale_runs,
    fail_run_for_delivery,
    finish_run,
    finish_run_from_pipeline,
    succeed_run_for_delivery,
)
from kiosk.actions.runs.listeners import RunChange, RunChangeKind, RunListener
from kiosk.actions.runs.service import Runs
from kiosk.actions.runs.states import (
    ACTIVE,
    FAILURE,
    FINISHED,
    IN_PROGRESS,
    STATUSES,
    new_run_id,
    pipeline_run_name,
    run_id_for_key,
    run_row,
    trigger_of,
)
from kiosk.actions.runs.store import add_run_log, insert_runs, queue_delivery
from kiosk.actions.runs.views import DEFAULT_LOGS_PAGE, DEFAULT_RUNS_PAGE, MAX_LOGS_PAGE, MAX_RUNS_PAGE

__all__ = [
    "ACTIVE",
    "DEFAULT_LOGS_PAGE",
    "DEFAULT_RUNS_PAGE",
    "FAILURE",
    "FINISHED",
    "IN_PROGRESS",
    "MAX_LOGS_PAGE",
    "MAX_RUNS_PAGE",
    "STATUSES",
    "RunChange",
    "RunChangeKind",
    "RunListener",
    "Runs",
    "add_run_log",
    "describe_duration",
    "describe_http_status",
    "expire_stale_runs",
    "fail_run_for_delivery",
    "finish_run",
    "finish_run_from_pipeline",
    "insert_runs",
    "new_run_id",
    "pipeline_run_name",
    "queue_delivery",
    "run_id_for_key",
    "run_row",
    "succeed_run_for_delivery",
    "trigger_of",
]
