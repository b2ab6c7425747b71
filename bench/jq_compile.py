"""Mapping throughput: Ocean's default repository mapping, compiled in process vs libjq per field.

Ocean maps each item by running every mapping expression through libjq (compiled once, then one
``input_value(item).first()`` per field per item); Ocean's Azure DevOps integration does 900 to
1,600 entities/s on this machine. This bench maps N generated repository items (default 20,000)
through the same eight expressions three ways, in the same run:

* **libjq per field** — Ocean's way: the ``jq`` module, one call per field per item;
* **compiled** — :mod:`kiosk.core.jq_compile`: the programs compiled once into closures, one
  ``first(item)`` per field per item;
* **engine batch** — :meth:`kiosk.core.jq_engine.JqPool.evaluate` over the whole batch (plain
  paths and compiled programs answered in process, anything else in one worker round trip).

It prints entities/s for each (median of ``--rounds`` rounds) and the ratio to libjq.

    python -m bench.jq_compile [--n 20000] [--rounds 5] [--quick]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jq
from bench.common import in_process_parser

from kiosk.core.jq_compile import compile_program
from kiosk.core.jq_engine import JqLimits, JqPool

#: Ocean's default mapping for ``kind: repository`` (port-app-config.yaml of its Azure DevOps
#: integration): identifier, title, blueprint, properties and relations.
REPOSITORY_MAPPING = {
    "identifier": ".id",
    "title": ".name",
    "blueprint": '"azureDevopsRepository"',
    "url": ".remoteUrl",
    "readme": '.__includedFiles["README.md"]',
    "codeowners": '.__includedFiles["CODEOWNERS"]',
    "project": '.project.id | gsub(" "; "")',
    "selector": "true",
}


def repository(index: int) -> dict[str, Any]:
    """One item shaped like Azure DevOps' ``git/repositories`` answer, with Ocean's extras."""
    project = f"{index % 97:08x}-proj ect-{index % 13:04d}"
    return {
        "id": f"{index:08x}-0000-4000-8000-{index:012x}",
        "name": f"service-{index}",
        "url": f"https://dev.azure.com/org/{project}/_apis/git/repositories/{index}",
        "project": {
            "id": project,
            "name": f"Project {index % 97}",
            "state": "wellFormed",
            "revision": index,
            "visibility": "private",
        },
        "defaultBranch": "refs/heads/main",
        "size": 1024 * index,
        "remoteUrl": f"https://org@dev.azure.com/org/{project}/_git/service-{index}",
        "sshUrl": f"git@ssh.dev.azure.com:v3/org/{project}/service-{index}",
        "webUrl": f"https://dev.azure.com/org/{project}/_git/service-{index}",
        "isDisabled": False,
        "__includedFiles": {"README.md": f"# service {index}\n\nOwned by team {index % 7}.", "CODEOWNERS": None},
    }


def rate(n: int, rounds: int, map_all: Callable[[], object]) -> float:
    """Entities/s: the median over ``rounds`` of mapping all ``n`` items."""
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        map_all()
        seconds.append(time.perf_counter() - started)
    return n / statistics.median(seconds)


def main(argv: list[str] | None = None) -> None:
    parser = in_process_parser(__doc__.splitlines()[0], n=20_000, n_help="repository items per round")
    args = parser.parse_args(argv)
    n, rounds = (500, 2) if args.quick else (args.n, args.rounds)
    items = [repository(index) for index in range(n)]
    expressions = list(REPOSITORY_MAPPING.values())

    libjq_programs = [jq.compile(expression) for expression in expressions]
    compiled_programs = [compile_program(expression) for expression in expressions]

    def with_libjq() -> list[list[Any]]:
        return [[program.input_value(item).first() for program in libjq_programs] for item in items]

    def compiled() -> list[list[Any]]:
        return [[program.first(item) for program in compiled_programs] for item in items]

    pool = JqPool(JqLimits())

    def engine_batch() -> list[Any]:
        return [result.unwrap() for result in pool.evaluate(expressions, items)]

    try:
        flat = [value for row in with_libjq() for value in row]
        assert [value for row in compiled() for value in row] == flat, "compiled answers differ from libjq's"
        assert engine_batch() == flat, "the engine's answers differ from libjq's"
        baseline = rate(n, rounds, with_libjq)
        ours = rate(n, rounds, compiled)
        batch = rate(n, rounds, engine_batch)
    finally:
        pool.close()
    print(f"Ocean's repository mapping ({len(expressions)} expressions), {n} items, median of {rounds} rounds")
    print(f"  libjq per field per item : {baseline:10,.0f} entities/s")
    print(f"  compiled, in process     : {ours:10,.0f} entities/s   {ours / baseline:5.1f}x")
    print(f"  engine batch (evaluate)  : {batch:10,.0f} entities/s   {batch / baseline:5.1f}x")


if __name__ == "__main__":
    main()
