"""Azure's JSON for test runs, test results, build code coverage and Advanced Security alerts.

Pure functions of :mod:`kiosk.emulator.org.model` objects, in the wire shapes of Microsoft's
``test`` area (``TestRun``, ``TestCaseResult``, ``BuildCoverage``) and of the Advanced Security
``alert`` area (``Alert``, served on ``advsec.dev.azure.com`` by Azure, on the org URL here).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Final
from urllib.parse import quote

from kiosk.emulator.org.model import Build, CoverageModule, Organisation, SecurityAlert, TestResult, TestRun
from kiosk.emulator.shapes_core import azure_date, user_ref

__all__ = [
    "COVERAGE_BLOCK_DATA",
    "COVERAGE_FUNCTIONS",
    "COVERAGE_MODULES",
    "alert_json",
    "build_coverage_json",
    "result_json",
    "run_json",
    "run_url",
]

COVERAGE_MODULES: Final = 1
COVERAGE_FUNCTIONS: Final = 2
COVERAGE_BLOCK_DATA: Final = 4
"""``flags`` of the code coverage call: additive, as Azure documents them."""

_RUN_STATES: Final = ("Completed",)


def run_url(org: Organisation, run: TestRun) -> str:
    return f"{org.url}/{run.project_id}/_apis/test/Runs/{run.id}"


def _shallow(item_id: int | str, name: str, url: str) -> dict[str, Any]:
    """A ``ShallowReference``: Azure gives its id as a string."""
    return {"id": str(item_id), "name": name, "url": url}


def _build_ref(org: Organisation, run: TestRun, build_id: int) -> dict[str, Any]:
    build = org.builds.get(build_id)
    name = build.build_number if build is not None else str(build_id)
    return _shallow(build_id, name, f"{org.url}/{run.project_id}/_apis/build/Builds/{build_id}")


def _project_ref(org: Organisation, project_id: str) -> dict[str, Any]:
    project = org.projects[project_id]
    return _shallow(project.id, project.name, f"{org.url}/_apis/projects/{project.id}")


def _statistics(run: TestRun) -> list[dict[str, Any]]:
    outcomes: dict[str, int] = {}
    for result in run.results:
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
    return [{"state": run.state, "outcome": outcome, "count": count} for outcome, count in sorted(outcomes.items())]


def run_json(org: Organisation, run: TestRun, *, details: bool) -> dict[str, Any]:
    """A ``TestRun``; ``details`` (``includeRunDetails=true``) adds its statistics and audit fields."""
    project = org.projects[run.project_id]
    url = run_url(org, run)
    passed = run.count("Passed")
    not_executed = run.count("NotExecuted")
    body: dict[str, Any] = {
        "id": run.id,
        "name": run.name,
        "url": url,
        "isAutomated": run.is_automated,
        "owner": user_ref(org, run.owner_id),
        "project": _project_ref(org, run.project_id),
        "startedDate": azure_date(run.started_date),
        "completedDate": azure_date(run.completed_date),
        "state": run.state,
        "plan": {"id": "0"},
        "postProcessState": "Complete",
        "totalTests": len(run.results),
        "incompleteTests": 0,
        "notApplicableTests": not_executed,
        "passedTests": passed,
        "unanalyzedTests": len(run.results) - passed - not_executed,
        "revision": run.revision,
        "webAccessUrl": f"{org.url}/{quote(project.name, safe='')}/_TestManagement/Runs?runId={run.id}&_a=runCharts",
    }
    build = org.builds.get(run.build_id) if run.build_id is not None else None
    if run.build_id is not None:
        body["build"] = _build_ref(org, run, run.build_id)
    if details:
        body["runStatistics"] = _statistics(run)
        body["createdDate"] = azure_date(run.started_date)
        body["lastUpdatedDate"] = azure_date(run.completed_date or run.started_date)
        body["lastUpdatedBy"] = user_ref(org, run.owner_id)
        if build is not None:
            body["buildConfiguration"] = {
                "id": build.id,
                "number": build.build_number,
                "uri": f"vstfs:///Build/Build/{build.id}",
                "branchName": build.source_branch,
                "sourceVersion": build.source_version,
                "buildDefinitionId": build.definition_id,
                "project": _project_ref(org, build.project_id),
            }
    return body


def result_json(org: Organisation, run: TestRun, result: TestResult) -> dict[str, Any]:
    """A ``TestCaseResult`` of ``run``."""
    url = run_url(org, run)
    body: dict[str, Any] = {
        "id": result.id,
        "project": _project_ref(org, run.project_id),
        "startedDate": azure_date(result.started_date),
        "completedDate": azure_date(result.completed_date),
        "durationInMs": float(result.duration_ms),
        "outcome": result.outcome,
        "revision": 1,
        "state": "Completed",
        "testCase": {"name": result.test_case_title},
        "testRun": _shallow(run.id, run.name, url),
        "lastUpdatedDate": azure_date(result.completed_date),
        "lastUpdatedBy": user_ref(org, run.owner_id),
        "priority": result.priority,
        "computerName": "fv-az123-456",
        "createdDate": azure_date(result.started_date),
        "url": f"{url}/Results/{result.id}",
        "failureType": "None",
        "automatedTestStorage": result.automated_test_storage,
        "automatedTestType": "UnitTest",
        "automatedTestName": result.automated_test_name,
        "testCaseTitle": result.test_case_title,
        "owner": user_ref(org, run.owner_id),
        "runBy": user_ref(org, run.owner_id),
        "testCaseReferenceId": result.id - 99_000,
    }
    if run.build_id is not None:
        body["build"] = _build_ref(org, run, run.build_id)
    if result.error_message is not None:
        body["errorMessage"] = result.error_message
    return body


def _module_statistics(module: CoverageModule) -> dict[str, int]:
    return {
        "blocksCovered": module.blocks_covered,
        "blocksNotCovered": module.block_count - module.blocks_covered,
        "linesCovered": module.lines_covered,
        "linesNotCovered": module.lines_not_covered,
        "linesPartiallyCovered": module.lines_partially_covered,
    }


def _module_json(module: CoverageModule, flags: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "blockCount": module.block_count,
        "name": module.name,
        "signature": module.signature,
        "signatureAge": 1,
        "statistics": _module_statistics(module),
        "functions": [],
    }
    if flags & COVERAGE_FUNCTIONS:
        body["functions"] = [
            {
                "name": function.name,
                "namespace": function.namespace,
                "class": function.class_name,
                "sourceFile": f"/src/{function.class_name}.cs",
                "statistics": {
                    "blocksCovered": function.blocks_covered,
                    "blocksNotCovered": function.blocks_not_covered,
                    "linesCovered": function.lines_covered,
                    "linesNotCovered": function.lines_not_covered,
                    "linesPartiallyCovered": function.lines_partially_covered,
                },
            }
            for function in module.functions
        ]
    if flags & COVERAGE_BLOCK_DATA:
        # One byte per block, 1 where covered: derived from the signature so it is stable.
        seed = hashlib.sha256(module.signature.encode()).digest()
        covered = sorted(range(module.block_count), key=lambda i: seed[i % len(seed)] ^ i)[: module.blocks_covered]
        chosen = set(covered)
        body["blockData"] = base64.b64encode(bytes(1 if i in chosen else 0 for i in range(module.block_count))).decode()
    return body


def build_coverage_json(org: Organisation, build: Build, modules: list[CoverageModule], flags: int) -> dict[str, Any]:
    """A ``BuildCoverage``: one configuration of ``build`` with its modules (when ``flags`` asks for them)."""
    body: dict[str, Any] = {
        "configuration": {
            "id": build.id,
            "number": build.build_number,
            "uri": f"vstfs:///Build/Build/{build.id}",
            "flavor": "Release",
            "platform": "Any CPU",
            "branchName": build.source_branch,
            "sourceVersion": build.source_version,
            "buildDefinitionId": build.definition_id,
            "project": _project_ref(org, build.project_id),
        },
        "state": "Completed",
        "lastError": "",
        "codeCoverageFileUrl": f"{org.url}/{build.project_id}/_apis/build/builds/{build.id}/artifacts"
        "?artifactName=Code%20Coverage%20Report",
    }
    if flags & (COVERAGE_MODULES | COVERAGE_FUNCTIONS | COVERAGE_BLOCK_DATA):
        body["modules"] = [_module_json(module, flags) for module in modules]
    return body


def alert_json(org: Organisation, alert: SecurityAlert) -> dict[str, Any]:
    """An Advanced Security ``Alert``."""
    repo = org.repositories[alert.repository_id]
    branch = repo.default_branch or "refs/heads/main"
    item_url = f"{repo.web_url}?path={quote(alert.file_path, safe='/')}&version=GC{alert.commit_id}&line={alert.line}"
    body: dict[str, Any] = {
        "alertId": alert.id,
        "alertType": alert.alert_type,
        "severity": alert.severity,
        "confidence": "high" if alert.alert_type == "secret" else "other",
        "state": alert.state,
        "title": alert.title,
        "firstSeenDate": azure_date(alert.first_seen),
        "lastSeenDate": azure_date(alert.last_seen),
        "introducedDate": azure_date(alert.first_seen),
        "gitRef": branch,
        "repositoryUrl": repo.web_url,
        "physicalLocations": [
            {
                "filePath": alert.file_path,
                "region": {"lineStart": alert.line, "lineEnd": alert.line, "columnStart": 1, "columnEnd": 80},
                "versionControl": {"commitHash": alert.commit_id, "itemUrl": item_url},
            }
        ],
        "logicalLocations": (
            [{"fullyQualifiedName": alert.rule_name, "kind": "rootDependency"}]
            if alert.alert_type == "dependency"
            else []
        ),
        "tools": [
            {
                "name": alert.tool_name,
                "rules": [
                    {
                        "opaqueId": alert.rule_id,
                        "friendlyName": alert.rule_name,
                        "description": alert.title,
                        "helpMessage": f"See {alert.rule_id}.",
                        "tags": [alert.alert_type, "security"],
                    }
                ],
            }
        ],
        "validationFingerprints": [],
    }
    if alert.fixed is not None:
        body["fixedDate"] = azure_date(alert.fixed)
    if alert.state in ("dismissed", "autoDismissed"):
        body["dismissal"] = {
            "dismissalType": "acceptedRisk" if alert.state == "dismissed" else "agentDismissed",
            "message": "Not reachable from the public API." if alert.state == "dismissed" else "",
            "stateChangedDate": azure_date(alert.last_seen),
        }
    return body
