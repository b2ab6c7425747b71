"""Watches: named sets of subscriptions (git repositories, container images, Helm charts, with
branch/tag filters) that inbound events refresh, and the reactions a refresh fires.

Modules, by what they hold:

    config      the ``watches:`` section of kiosk.yaml
    normalise   one key per repository however it is spelled (SSH/https, org@, docker.io/library ...)
    semver      versions and ranges (^1.2, >=1.0 <2)
    filters     exact / glob / semver-range filters
    events      what an inbound event says changed (what receivers produce, matching reads)
    matching    which watches an event refreshes: a dict lookup by repository, then the filters
    reactions   run an action / upsert an entity, built with jq from the event
    store       watch refresh state and reaction records
    processor   the worker that takes accepted events from the job queue and fires their reactions

Nothing is imported here (``kiosk.config.model`` imports :mod:`kiosk.watches.config`).
"""
