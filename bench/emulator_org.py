"""The organisation the benchmarks that read the Azure DevOps emulator generate: its emulator.yaml.

One org, ``bench``, made by the emulator's generator with a fixed seed (every run reads the same
content), its personal access token read from ``BENCH_PAT``, pipelines not executed (these
benchmarks read an organisation; they never run one).
"""

from __future__ import annotations

from collections.abc import Mapping

import yaml

#: The generator's seed unless a benchmark gives its own.
SEED = 7


def bench_org_config(generate: Mapping[str, int]) -> str:
    """emulator.yaml for the ``bench`` org; ``generate`` is its ``generate:`` block as the emulator
    reads it (``projects``, ``repos``, ``workitems``, ``pullRequests``, ``builds``, ``seed``...)."""
    org = {"name": "bench", "personalAccessTokens": [{"env": "BENCH_PAT"}], "generate": {"seed": SEED, **generate}}
    return yaml.safe_dump({"settings": {"executeRuns": False}, "orgs": [org]}, sort_keys=False)
