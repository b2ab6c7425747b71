"""Generate a project's test runs, code coverage and Advanced Security alerts, deterministically.

Kept apart from :mod:`kiosk.emulator.org.generate` and driven by a random stream of its own (seeded
from the organisation's seed and the project's id), so adding these objects leaves every other
generated id, name and date exactly as it was.

- Test runs: one per finished build (two for some), published by the build's pipeline, each with
  its test results (mostly passed, some failed or not executed). Builds that ran tests and did not
  fail early get code coverage: a few modules, each with a few functions.
- Advanced Security: on for about two repositories in three (Azure's default is off: a repository
  with it off answers 400). Each repository with it on has alerts of the three types, in every state.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from kiosk.emulator.org.model import (
    Build,
    CoverageFunction,
    CoverageModule,
    GitRepository,
    Organisation,
    Project,
    SecurityAlert,
    TestResult,
    TestRun,
    User,
)

__all__ = ["make_alerts", "make_test_runs", "quality_random"]

_SUITES: Final = ("Unit", "Integration", "Contract")
_TEST_NAMES: Final = (
    "ParsesConfiguration", "RejectsEmptyName", "RoundTripsJson", "HandlesTimeout", "RetriesOnConflict",
    "KeepsOrder", "MergesDuplicates", "ComputesTotals", "ReadsUnicodeNames", "PagesToTheEnd",
    "DeniesWithoutScope", "StreamsLargeFiles", "RendersMarkdown", "CachesProjects", "SchedulesNightly",
)  # fmt: skip
_OUTCOMES: Final = ("Passed",) * 14 + ("Failed", "Failed", "NotExecuted")
_MODULES: Final = ("core.dll", "api.dll", "storage.dll", "web.dll")
_FUNCTIONS: Final = ("Load", "Save", "Validate", "Render", "Dispatch")
_ALERT_KINDS: Final = (
    # (alertType, tool, rule id, rule name, title, file)
    ("dependency", "DependencyScanning", "CVE-2024-21907", "Newtonsoft.Json", "Newtonsoft.Json 12.0.1 is vulnerable",
     "/src/packages.lock.json"),
    ("dependency", "DependencyScanning", "CVE-2023-44487", "http2-rapid-reset", "HTTP/2 rapid reset in Kestrel",
     "/src/Api/Api.csproj"),
    ("code", "CodeQL", "cs/sql-injection", "SqlInjection", "SQL query built from user-controlled sources",
     "/src/Data/Queries.cs"),
    ("code", "CodeQL", "js/xss", "ReflectedXss", "Cross-site scripting vulnerability due to user-provided value",
     "/web/src/render.js"),
    ("secret", "SecretScanning", "SEC101/102", "AdoPat", "Azure DevOps personal access token exposed",
     "/deploy/settings.json"),
)  # fmt: skip
_SEVERITIES: Final = {
    "dependency": ("critical", "high", "medium", "low"),
    "code": ("high", "medium", "error", "warning"),
    "secret": ("critical", "high"),
}
_STATES: Final = ("active", "active", "active", "dismissed", "fixed", "autoDismissed")


def quality_random(seed: int, project: Project) -> random.Random:
    """The random stream of ``project``'s test runs and alerts: independent of every other stream."""
    return random.Random(f"quality:{seed}:{project.id}")


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _results(rng: random.Random, started: datetime, suite: str) -> list[TestResult]:
    results: list[TestResult] = []
    at = started
    for index, name in enumerate(rng.sample(_TEST_NAMES, rng.randrange(3, 9))):
        outcome = rng.choice(_OUTCOMES)
        duration = 0 if outcome == "NotExecuted" else rng.randrange(3, 4_000)
        finished = at + timedelta(milliseconds=duration)
        results.append(
            TestResult(
                id=100_000 + index,
                test_case_title=name,
                automated_test_name=f"Fabrikam.{suite}Tests.{name}",
                automated_test_storage=f"fabrikam.{suite.lower()}tests.dll",
                outcome=outcome,
                duration_ms=duration,
                started_date=at,
                completed_date=finished,
                priority=rng.choice((0, 1, 2, 2, 3)),
                error_message=f"Assert.Equal() failure in {name}" if outcome == "Failed" else None,
            )
        )
        at = finished
    return results


def _coverage(rng: random.Random) -> list[CoverageModule]:
    modules: list[CoverageModule] = []
    for name in rng.sample(_MODULES, rng.randrange(1, 4)):
        functions: list[CoverageFunction] = []
        for function in rng.sample(_FUNCTIONS, rng.randrange(1, 4)):
            blocks = rng.randrange(4, 60)
            covered = rng.randrange(0, blocks + 1)
            lines = blocks * 2
            partial = rng.randrange(0, 3)
            functions.append(
                CoverageFunction(
                    function,
                    "Fabrikam." + name.removesuffix(".dll").title(),
                    name.removesuffix(".dll").title() + "Service",
                    covered,
                    blocks - covered,
                    covered * 2,
                    lines - covered * 2,
                    partial,
                )
            )
        modules.append(
            CoverageModule(
                name=name,
                signature=_guid(rng),
                block_count=sum(f.blocks_covered + f.blocks_not_covered for f in functions),
                blocks_covered=sum(f.blocks_covered for f in functions),
                lines_covered=sum(f.lines_covered for f in functions),
                lines_not_covered=sum(f.lines_not_covered for f in functions),
                lines_partially_covered=sum(f.lines_partially_covered for f in functions),
                functions=tuple(functions),
            )
        )
    return modules


def make_test_runs(org: Organisation, builds: Sequence[Build], users: Sequence[User], rng: random.Random) -> None:
    """Test runs (with results) for every finished build of ``builds``, and code coverage for most."""
    for build in builds:
        if build.finish_time is None or build.start_time is None or build.result == "canceled":
            continue
        definition = org.build_definitions.get(build.definition_id)
        name = definition.name if definition is not None else build.build_number
        for suite in _SUITES[: 1 + (rng.random() < 0.3)]:
            started = build.start_time + timedelta(seconds=rng.randrange(5, 20))
            results = _results(rng, started, suite)
            finished = max(result.completed_date for result in results)
            run = TestRun(
                id=org.next_id("testRun"),
                name=f"{name} {suite} tests",
                project_id=build.project_id,
                build_id=build.id,
                state="Completed",
                is_automated=True,
                owner_id=rng.choice(users).id,
                started_date=started,
                completed_date=finished,
                results=results,
                revision=rng.randrange(2, 6),
            )
            org.test_runs[run.id] = run
        if rng.random() < 0.75:
            org.code_coverage[build.id] = _coverage(rng)


def make_alerts(org: Organisation, repos: Sequence[GitRepository], now: datetime, rng: random.Random) -> None:
    """Turn Advanced Security on for about two repositories in three of ``repos``, and give those alerts."""
    for repo in repos:
        if rng.random() >= 0.67:
            continue
        org.advanced_security.add(repo.id)
        head = repo.head()
        commit_id = head.commit_id if head is not None else "0" * 40
        for alert_type, tool, rule_id, rule_name, title, path in rng.sample(_ALERT_KINDS, rng.randrange(2, 6)):
            first = now - timedelta(days=rng.randrange(2, 200), minutes=rng.randrange(0, 1440))
            state = rng.choice(_STATES)
            last = first + timedelta(days=rng.randrange(0, 30))
            alert = SecurityAlert(
                id=org.next_id("alert"),
                repository_id=repo.id,
                project_id=repo.project_id,
                alert_type=alert_type,
                severity=rng.choice(_SEVERITIES[alert_type]),
                state=state,
                title=title,
                rule_id=rule_id,
                rule_name=rule_name,
                tool_name=tool,
                file_path=path,
                line=rng.randrange(1, 400),
                commit_id=commit_id,
                first_seen=first,
                last_seen=last,
                fixed=last + timedelta(hours=rng.randrange(1, 48)) if state == "fixed" else None,
            )
            org.alerts[alert.id] = alert
