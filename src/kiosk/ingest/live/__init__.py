"""Live events: each received service-hook event read again from Azure, mapped and written.

:mod:`.model` holds what an event handler gives back; the handlers per event type, the processor
that claims the received events in order per object, and their wiring live beside it.
"""
