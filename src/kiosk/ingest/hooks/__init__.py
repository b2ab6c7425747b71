"""An integration's service-hook subscriptions in Azure DevOps, kept exactly as its mapping needs.

Modules, by what they hold:

    catalogue    the events each kind needs, their publishers and hosts (data)
    plan         the subscriptions needed and the plan against what exists (pure)
    fingerprint  a salted hash of the consumer inputs last applied (pure)
    store        the fingerprints' table and the reconcile lease in kiosk's job queue
    reconcile    listing, planning and applying against Azure DevOps (IO)
"""
