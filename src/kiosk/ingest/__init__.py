"""The Azure DevOps integration: Ocean's configuration and mapping format, and the kinds it ingests.

Modules, by what they hold:

    kinds      the kinds a mapping may name: selector fields (types, defaults), Azure DevOps calls (data)
    mapping    the mapping (Ocean's ``port-app-config``): models, checks, problems with their place
    config     an integration's settings (kiosk.yaml's ``integrations:`` items) and Ocean's
               ``OCEAN__`` environment variables; :class:`~kiosk.ingest.config.Integration`, one
               ready to run
    defaults   Ocean's default blueprints and mapping (package data), with the reference's bugs fixed

Reading files (a mapping file, errors with lines) and resolving secrets is kiosk.config's part:
:func:`kiosk.config.integrations.resolve_integrations` gives the integrations to run.
"""

# kiosk.config first, whatever imported us (as kiosk.receivers does): kiosk.config's model embeds
# this package's config models, and kiosk.ingest.config needs kiosk.config.secrets. Importing the
# whole of kiosk.config here, before kiosk.ingest.config, resolves that cycle in either order.
import kiosk.config  # noqa: F401  (isort: keep first)
