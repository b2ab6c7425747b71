"""Helpers the tests and the benchmarks share (``bench`` imports them as ``tests.support.*``).

- :mod:`tests.support.servers`: any ASGI app on loopback under kiosk's server in a thread.
- :mod:`tests.support.polling`: waiting for what kiosk does in the background.
- :mod:`tests.support.live_kiosk`: kiosk's app served that way (:class:`~tests.support.live_kiosk.LiveServer`),
  with or without a kiosk.yaml, and its error bodies.
- :mod:`tests.support.kiosk_server`: kiosk as a separate server process (kill it, restart it, run two).
- :mod:`tests.support.processes`: waiting until a server started as a process of its own answers.
- :mod:`tests.support.receiver`: a loopback webhook receiver that records what kiosk delivers.
- :mod:`tests.support.deliveries`: deliveries put straight into kiosk's outbox.
- :mod:`tests.support.events`: webhook payloads as ACR and Azure DevOps post them, and the records
  kiosk stores for them.
- :mod:`tests.support.config_files`: kiosk.yaml files written, loaded, applied or refused.
- :mod:`tests.support.kiosk_yaml`: kiosk.yaml documents declared as data, self-service actions built
  by :func:`~tests.support.kiosk_yaml.self_service_action`.
- :mod:`tests.support.pipelines`: the seed's incoming-webhook body, checksum and pipeline resource.
- :mod:`tests.support.threads`: work run in several threads started together.
- :mod:`tests.support.azure_stack`: kiosk and the Azure DevOps emulator wired to each other.
- :mod:`tests.support.integrations`: Azure DevOps integrations declared once for every layer: mapping
  resources, a loaded :class:`~kiosk.ingest.config.Integration`, a kiosk.yaml holding one, the
  blueprints created up front.
- :mod:`tests.support.emulated_builds`: builds put straight into the emulator's model.
- :mod:`tests.support.resyncs`: a resync engine that records its runs (the runner's tests).
- :mod:`tests.support.logs`: the process-wide logging state, put back after a test that configures it.
"""
