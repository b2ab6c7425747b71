"""Receivers: hard-to-guess URLs that take Azure Container Registry, Azure DevOps and generic JSON
events and refresh the watches (:mod:`kiosk.watches`) those events concern.

Modules, by what they hold:

    config     the ``receivers:`` section of kiosk.yaml
    urls       the URL: /webhooks/<type>/<sha256(project + name + secret)>
    senders    who sent a request (User-Agent, else payload shape) and what its payload says
    registry   the receivers as their secrets stand now; constant-time path lookup; extra auth checks
    intake     what to answer and what to store for one request (pure)
    store      stored events: batched writes with their jobs, newest-first pages, pruning statements
    writer     group commit: one thread stores events arriving together in one transaction
    retention  which events the pruner deletes (``retention.receiverEvents``): cutoffs and choices (pure)
    pruner     deletes old events in small batches (run every few minutes by :mod:`kiosk.runtime`)

The HTTP endpoint and API live in :mod:`kiosk.web.routes.receivers`.
"""

# kiosk.config first, whatever imported us (as kiosk.delivery does): kiosk.config's model embeds
# this package's config models, and kiosk.receivers.config needs kiosk.config.secrets. Importing
# the whole of kiosk.config here, before kiosk.receivers.config, resolves that cycle in either order.
import kiosk.config  # noqa: F401  (isort: keep first)
