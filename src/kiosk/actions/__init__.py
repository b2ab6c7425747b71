"""Self-service actions and automations in Port's format: definitions, runs, approvals, the
reporting API, and automations fired by catalog and run events.

    model       parse_action: a Port action or automation document, checked and normalised (pure)
    inputs      userInputs: definitions and a run's values (pure)
    payload     Port's default payload and jq body templates (pure)
    invocation  the request an AZURE-DEVOPS or WEBHOOK action sends (pure)
    secrets     secret inputs sealed at rest (AES-GCM, key in server_state)
    service     Actions: action definitions in the database
    runs/       Runs: starting, approving, reporting; finish_run_from_pipeline,
                fail_run_for_delivery, expire_stale_runs for the rest of kiosk (a package:
                states, requests, views, listeners, store, bodies, service, reporting, finishing)
    automations Automations: the catalog's and the runs' change listener that fires automations
                in the writer's transaction (matching, conditions, payloads are pure)

This package's ``__init__`` imports nothing on purpose: kiosk.config imports the pure modules,
and the services import kiosk.config, so eager imports here would make a cycle.
"""
