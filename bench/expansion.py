"""Template expansion speed: ``expand_pipeline`` on a generated pipeline, against a plain C YAML load.

The emulator expands the triggered pipeline on every webhook trigger, so expansion sits on the
trigger path. A pipeline of L lines (default 2,000) with E ``${{ }}`` expressions (default 500)
is generated: parameters of every kind, a webhook resource whose body is read as
``parameters.WebHook.…``, stages of jobs of steps, ``if`` and ``each`` blocks. It is expanded R
times (default 30) with the parse cache cleared before each run (the cold figure the target is
about), then R times through the cache (what repeated triggers of one pipeline cost).

Baseline, same run, interleaved with the cold runs: ``yaml.load`` of the same text with PyYAML's
``CSafeLoader`` (libyaml in C, no positions, no expansion), so the ratio reads "expansion costs N
times a plain C YAML load" whatever the machine. The small webhook pipeline of the emulator's
trigger endpoint is timed too, cached, as expansions per second.

    python -m bench.expansion [--lines 2000] [--expressions 500] [--runs 30] [--quick]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from bench.common import median, percentile, ratio
from tests.support.pipelines import webhook_resources

from kiosk.pipelines.expand import expand_pipeline
from kiosk.pipelines.yaml_source import WITH_LIBYAML, clear_parse_cache, dict_loader, parse_yaml

TARGET_MS = 50.0
"""The cold-parse median a 2,000-line, 500-expression pipeline must expand within."""

PAYLOADS: dict[str, Any] = {
    "WebHook": {
        "resource": {"message": {"title": "Hello"}, "createdBy": {"displayName": "Bench"}},
        "eventType": "bench.event",
    }
}

#: The webhook resource both pipelines declare (the trigger's filter on the message title).
WEBHOOK_RESOURCE = webhook_resources(("resource.message.title", "Hello"))
WEBHOOK_PIPELINE = (
    WEBHOOK_RESOURCE
    + """\
steps:
- script: echo ${{ parameters.WebHook.resource.message.title }}
"""
)
WEBHOOK_PAYLOADS = {"WebHook": {"resource": {"message": {"title": "hi"}}}}

HEADER = (
    """\
name: bench-$(Date:yyyyMMdd)$(Rev:.r)
trigger: none
"""
    + WEBHOOK_RESOURCE
    + """\
parameters:
- name: image
  type: string
  default: ubuntu-latest
  values: [ubuntu-latest, windows-latest]
- name: runTests
  type: boolean
  default: true
- name: retries
  type: number
  default: 3
- name: targets
  type: object
  default: [lint, unit, package]
- name: environments
  type: object
  default: {dev: westeurope, prod: northeurope}
variables:
  configuration: Release
  project: kiosk-bench
  requestedBy: ${{ parameters.WebHook.resource.createdBy.displayName }}
stages:
"""
)

# Steps as (lines, number of ${{ }} in them); {i} is a running number.
RICH_STEPS = [
    "    - script: echo ${{ parameters.WebHook.resource.message.title }} on ${{ parameters.image }}\n"
    "      displayName: Announce {i} for ${{ variables.project }}\n",
    "    - ${{ if parameters.runTests }}:\n"
    "      - script: npm test -- --shard={i} --retries=${{ parameters.retries }}\n"
    "        displayName: Test shard {i}\n",
    "    - ${{ each target in parameters.targets }}:\n"
    "      - script: make ${{ target }} STEP={i}\n"
    "        displayName: Make ${{ target }}\n",
    "    - bash: |\n"
    "        echo building ${{ variables.configuration }}\n"
    "        echo for ${{ parameters.WebHook.resource.message.title }}\n"
    "        ls -la\n"
    "      env:\n"
    "        RETRIES: ${{ parameters.retries }}\n",
]
PLAIN_STEPS = [
    "    - checkout: self\n",
    "    - task: Npm@1\n      inputs:\n        command: ci\n        workingDir: $(Build.SourcesDirectory)/app/{i}\n",
    "    - script: ./tools/check.sh --step {i}\n      displayName: Check {i}\n      condition: succeeded()\n",
]
STEPS_PER_JOB = 10
JOBS_PER_STAGE = 4


def _job(stage: int, job: int) -> str:
    return (
        f"  - job: build_{stage}_{job}\n"
        f"    displayName: Build {job} of ${{{{ variables.project }}}}\n"
        "    pool:\n"
        "      vmImage: ${{ parameters.image }}\n"
        "    steps:\n"
    )


def _stage(stage: int) -> str:
    return (
        f"- stage: stage_{stage}\n"
        f"  displayName: Stage {stage} (${{{{ parameters.WebHook.resource.message.title }}}})\n"
        "  jobs:\n"
        "  - ${{ each env in parameters.environments }}:\n"
        f"    - job: deploy_{stage}_${{{{ env.key }}}}\n"
        "      pool:\n"
        "        vmImage: ${{ parameters.image }}\n"
        "      steps:\n"
        "      - script: deploy to ${{ env.value }}\n"
    )


def pipeline(lines: int = 2000, expressions: int = 500) -> str:
    """A pipeline of about ``lines`` lines holding about ``expressions`` ``${{ }}`` expressions.

    Steps are added one at a time, an expression-rich one whenever the text is behind the wanted
    expression density and a plain one otherwise, so both figures land close to the request.
    """
    parts = [HEADER]
    count_lines = HEADER.count("\n")
    count_exprs = HEADER.count("${{")
    stage = job = step = 0
    rich = plain = 0
    while count_lines < lines:
        if step % STEPS_PER_JOB == 0:
            if job % JOBS_PER_STAGE == 0:
                block = _stage(stage)
                stage += 1
            else:
                block = ""
            block += _job(stage, job)
            job += 1
        else:
            if count_exprs < expressions * count_lines / lines:
                block = RICH_STEPS[rich % len(RICH_STEPS)]
                rich += 1
            else:
                block = PLAIN_STEPS[plain % len(PLAIN_STEPS)]
                plain += 1
            block = block.replace("{i}", str(step))
        step += 1
        parts.append(block)
        count_lines += block.count("\n")
        count_exprs += block.count("${{")
    return "".join(parts)


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=2000, help="lines of the generated pipeline (default 2,000)")
    parser.add_argument("--expressions", type=int, default=500, help="${{ }} expressions in it (default 500)")
    parser.add_argument("--runs", type=int, default=None, help="measured expansions (default 30; 15 quick)")
    parser.add_argument("--quick", action="store_true", help="a smoke-test run (fewer repetitions)")
    args = parser.parse_args(argv)
    runs = max(args.runs or (15 if args.quick else 30), 15)
    small_runs = 2_000 if args.quick else 20_000
    text = pipeline(args.lines, args.expressions)
    load = dict_loader({})

    def expand() -> dict[str, Any]:
        return expand_pipeline(text, webhook_payloads=PAYLOADS, load=load)

    def expand_cold() -> None:
        clear_parse_cache()
        expand()

    def baseline() -> None:
        yaml.load(text, Loader=yaml.CSafeLoader)

    def parse_only() -> None:
        parse_yaml(text, "azure-pipelines.yml")

    document = expand()
    jobs = sum(len(stage["jobs"]) for stage in document["stages"])
    print(
        f"expansion: {text.count(chr(10)):,} lines, {text.count('${{'):,} ${{{{ }}}} expressions "
        f"({len(document['stages'])} stages, {jobs} jobs after expansion), {runs} runs, "
        f"libyaml {'yes' if WITH_LIBYAML else 'NO (pure-Python parser)'}",
        flush=True,
    )
    for _ in range(3):  # warm-up: imports, regex and expression caches, allocator
        expand_cold()
        baseline()
    cold: list[float] = []
    base: list[float] = []
    parse: list[float] = []
    for _ in range(runs):
        cold.append(timed(expand_cold))
        base.append(timed(baseline))
        parse.append(timed(parse_only))
    expand()
    cached = [timed(expand) for _ in range(runs)]

    small_load = dict_loader({})
    small = [
        timed(lambda: expand_pipeline(WEBHOOK_PIPELINE, webhook_payloads=WEBHOOK_PAYLOADS, load=small_load))
        for _ in range(small_runs)
    ]

    ms = 1000.0
    rows = [
        ("expand_pipeline, cold parse", cold),
        ("expand_pipeline, cached parse", cached),
        ("  of which parse_yaml (cold)", parse),
        ("baseline: yaml.load, CSafeLoader", base),
    ]
    width = max(len(label) for label, _ in rows)
    print(f"{'':{width}}  {'median':>9}  {'p95':>9}")
    for label, values in rows:
        print(f"{label:{width}}  {median(values) * ms:6.2f} ms  {percentile(values, 95) * ms:6.2f} ms")
    print(
        f"ratio to the baseline (median): cold {ratio(median(cold), median(base)):.1f}x, "
        f"cached {ratio(median(cached), median(base)):.1f}x a plain C YAML load"
    )
    print(
        f"webhook pipeline ({WEBHOOK_PIPELINE.count(chr(10))} lines), cached parse: "
        f"median {median(small) * 1e6:.0f} us, p95 {percentile(small, 95) * 1e6:.0f} us, "
        f"{1 / median(small):,.0f} expansions/s"
    )
    verdict = "met" if median(cold) * ms <= TARGET_MS else "NOT met"
    print(
        f"target: {args.lines:,}-line pipeline expands in <= {TARGET_MS:.0f} ms median (cold parse): "
        f"{verdict} ({median(cold) * ms:.1f} ms)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
