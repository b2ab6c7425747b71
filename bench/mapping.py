"""Mapping throughput: the default repository mapping over 50,000 Azure-shaped repository items.

The resync maps every raw item of a kind through its resource's mapping
(:meth:`kiosk.ingest.transform.CompiledResource.map`). This bench maps N repository items (default
50,000), shaped as the emulator serves them (``git/repositories``: ``project`` reference, URLs,
``size``…) with the integration's ``__includedFiles`` (README.md, CODEOWNERS), through resource
#2 of kiosk's default mapping (``src/kiosk/ingest/defaults/``: identifier, title, blueprint,
url/readme/codeowners, the project relation), three ways in the same run:

* **kiosk** — ``compile_resource(resource).map(items)``, what the resync does;
* **libjq, one program** — the same mapping written as one jq program over the whole batch
  (``[.[] | select(true) | {identifier: .id, …}]``), compiled once, run once by libjq (the ``jq``
  module, which hands libjq the batch as JSON text): the floor a jq-based mapper can reach;
* **Python by hand** — a dict comprehension that builds the same entities with no jq at all: the
  ceiling.

All three must give the same entities (checked first). It prints entities/s for each (median of
``--rounds``) and the ratios: kiosk against libjq and against the ceiling (target ≥ 25 %), and
kiosk's absolute rate against the 100,000 entities/s target.

    python -m bench.mapping [--n 50000] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import jq

from kiosk.ingest.defaults import default_mapping
from kiosk.ingest.mapping import ResourceConfig
from kiosk.ingest.transform import compile_resource

#: The issue's targets.
TARGET_RATE = 100_000
TARGET_SHARE_OF_CEILING = 0.25

#: The default repository mapping as one libjq program over the whole batch.
ONE_PROGRAM = """[.[] | select(true) | {
  identifier: .id,
  title: .name,
  blueprint: "azureDevopsRepository",
  properties: {url: .remoteUrl, readme: .__includedFiles["README.md"], codeowners: .__includedFiles["CODEOWNERS"]},
  relations: {project: (.project.id | gsub(" "; ""))}
}]"""

_PROJECTS = 50


def project(index: int) -> dict[str, Any]:
    """A ``TeamProjectReference`` as a repository's ``project``."""
    project_id = f"{index:08x}-4b1f-4c2d-9e3a-{index:012x}"
    return {
        "id": project_id,
        "name": f"Project {index}",
        "url": f"https://dev.azure.com/bench/_apis/projects/{project_id}",
        "state": "wellFormed",
        "revision": 400 + index,
        "visibility": "private",
        "lastUpdateTime": "2026-11-02T10:00:00.000Z",
    }


def repository(index: int, projects: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``GitRepository`` as the emulator serves it, enriched with ``__includedFiles``."""
    owner = projects[index % len(projects)]
    repo_id = f"{index:08x}-0000-4000-8000-{index:012x}"
    name = f"service-{index}"
    web = f"https://dev.azure.com/bench/Project%20{index % len(projects)}/_git/{name}"
    return {
        "id": repo_id,
        "name": name,
        "url": f"https://dev.azure.com/bench/{owner['id']}/_apis/git/repositories/{repo_id}",
        "project": owner,
        "defaultBranch": "refs/heads/main",
        "size": 1024 * (index % 5000),
        "remoteUrl": f"https://bench@dev.azure.com/bench/Project%20{index % len(projects)}/_git/{name}",
        "sshUrl": f"git@ssh.dev.azure.com:v3/bench/Project%20{index % len(projects)}/{name}",
        "webUrl": web,
        "isDisabled": False,
        "isInMaintenance": False,
        "__includedFiles": {
            "README.md": f"# {name}\n\nOwned by team {index % 7}.\n",
            "CODEOWNERS": "* @platform\n" if index % 3 == 0 else None,
        },
    }


def by_hand(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same mapping in plain Python: the ceiling."""
    return [
        {
            "identifier": item["id"],
            "blueprint": "azureDevopsRepository",
            "title": item["name"],
            "properties": {
                "url": item["remoteUrl"],
                "readme": item["__includedFiles"]["README.md"],
                "codeowners": item["__includedFiles"]["CODEOWNERS"],
            },
            "relations": {"project": item["project"]["id"].replace(" ", "")},
        }
        for item in items
    ]


def rate(n: int, rounds: int, run: Callable[[], object]) -> float:
    """Entities/s: the median over ``rounds`` of mapping all ``n`` items.

    The cyclic garbage collector is paused while a round runs (as ``timeit`` does): 50,000 items
    make every full collection long, and when one falls into a round depends on what ran before,
    not on the mapper; each round starts after a collection, its result dropped."""
    seconds = []
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            result = run()
            seconds.append(time.perf_counter() - started)
        finally:
            gc.enable()
        del result
    return n / statistics.median(seconds)


def repository_resource() -> ResourceConfig:
    [resource] = [r for r in default_mapping().resources if r.kind == "repository"]
    return resource


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="repository items")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a small smoke-test size")
    parser.add_argument("--engine", help="ignored (make bench passes it to every bench)")
    args = parser.parse_args(argv)
    n, rounds = (2_000, 2) if args.quick else (args.n, args.rounds)
    projects = [project(index) for index in range(_PROJECTS)]
    items = [repository(index, projects) for index in range(n)]
    compiled = compile_resource(repository_resource())
    program = jq.compile(ONE_PROGRAM)

    def kiosk() -> list[dict[str, Any]]:
        batch = compiled.map(items)
        assert not batch.failures
        return batch.entities

    def libjq() -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = program.input_value(items).first()
        return result

    expected = by_hand(items)
    assert kiosk() == expected, "kiosk's entities differ from the hand-written mapping's"
    assert libjq() == expected, "libjq's entities differ from the hand-written mapping's"

    ours = rate(n, rounds, kiosk)
    floor = rate(n, rounds, libjq)
    ceiling = rate(n, rounds, lambda: by_hand(items))
    print(f"Default repository mapping, {n:,} Azure-shaped items, median of {rounds} rounds")
    print(f"  kiosk (CompiledResource.map)  : {ours:12,.0f} entities/s   target >= {TARGET_RATE:,}")
    print(f"  libjq, one program per batch  : {floor:12,.0f} entities/s   kiosk is {ours / floor:5.1f}x")
    print(
        f"  Python by hand (ceiling)      : {ceiling:12,.0f} entities/s   kiosk is {ours / ceiling:6.1%}"
        f" of it (target >= {TARGET_SHARE_OF_CEILING:.0%})"
    )


if __name__ == "__main__":
    main()
