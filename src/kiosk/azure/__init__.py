"""Talking to Azure DevOps (or kiosk's emulator of it): the REST client actions use (``client``), service-hook
run events (``run_events``), and the async client an ingester reads an organisation with (``rest``, with
``paging``, ``ratelimit``, ``urls`` and ``errors``)."""
