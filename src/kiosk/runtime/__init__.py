"""Background work of a kiosk server: one scheduler, the periodic tasks, and the object that
starts and stops everything long-running for the app's lifespan.

Modules, by what they hold:

    periodic    ``Periodic``: call a function every so often on a daemon thread, stoppable at once
    tasks       the periodic tasks (run expiry, retention, subscription keeper) and their table
    retention   one retention round: old received events, then finished queue jobs
    background  ``Background``: starts and stops the services, the tasks, jq workers, the database
    tuning      process tuning for a long-running server (GC thresholds), applied by its launcher

Imports flow down: this package uses the capabilities (actions, receivers, delivery, azure) and
store/core; only the web app factory and the CLI import it.
"""
