"""The emulated Azure DevOps: registry, the incoming-webhook trigger, run queueing and run state.

One :class:`Emulator` holds everything; the HTTP layer (:mod:`kiosk.emulator.app`) only translates
requests to calls here and :class:`~kiosk.emulator.errors.AzureError` to Azure's error replies.

The trigger follows Azure's order of checks (reference file, "The trigger endpoint"): api-version,
org, the connection by WebHook Name (500 "Cannot find webhook…" when none, or when no pipeline
listens on it), the checksum header (500 ``RequiredHeaderSignatureNotFound`` when the connection
has a secret and the header is missing or empty; a wrong checksum is rejected the same way), the
JSON body (``application/json`` or 415, at most 64 levels deep or 400 ``InvalidPayloadException``,
both recorded), then per listening pipeline: filters (AND), expansion with the body bound to
``parameters.<alias>``, the run name — and a run queued, or the reason it was not. Azure answers
200 whether or not a run was queued; the emulator does too, and keeps the reason in the trigger
record (``GET /_emulator/triggers``), which is the part Azure does not give.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from kiosk.core.signing import verify_azure_checksum
from kiosk.emulator.bodies import check_json_content_type, parse_json
from kiosk.emulator.errors import AzureError
from kiosk.emulator.models import (
    Connection,
    Pipeline,
    PipelineOutcome,
    PipelineSource,
    Project,
    Run,
    TriggerRecord,
    stable_id,
)
from kiosk.emulator.org.events import EventSink, OrgEvent
from kiosk.emulator.org.model import Organisation
from kiosk.pipelines.build_number import format_build_number
from kiosk.pipelines.errors import PipelineError
from kiosk.pipelines.expand import dump_yaml, expand_pipeline
from kiosk.pipelines.variables import Variable
from kiosk.pipelines.webhooks import ALIAS_PATTERN, WebhookResource, check_filters, webhook_resources
from kiosk.pipelines.yaml_source import directory_loader, parse_yaml, to_plain

__all__ = ["API_VERSION_PATTERN", "Emulator", "EmulatorOptions", "RunListener", "check_api_version"]

log = logging.getLogger("kiosk.emulator")

RunListener = Callable[[Run], None]
"""Called (outside the lock) whenever a run changes state: queued, completed, canceling."""

_NOT_FOUND: Final = "Cannot find webhook for the given webHookId {name}. Try enabling CD trigger for this artifact."


@dataclass(frozen=True)
class EmulatorOptions:
    """The settings the service itself needs (see :class:`kiosk.emulator.config.EmulatorSettings`)."""

    base_url: str = "http://127.0.0.1:8001"
    accept_sha1_prefix: bool = False
    case_insensitive_filters: bool = False
    retain_runs: int = 10_000
    retain_triggers: int = 10_000


def _now() -> datetime:
    return datetime.now(UTC)


API_VERSION_PATTERN: Final = r"^[67]\.[0-9]+(-preview(\.[0-9]+)?)?$"
"""The api-versions served: 6.x and 7.x, ``-preview`` and ``-preview.N`` included (the OpenAPI pattern too)."""
_SERVED_VERSION: Final = re.compile(API_VERSION_PATTERN.rstrip("$") + r"\Z")
_ANY_VERSION: Final = re.compile(r"[0-9]+\.[0-9]+(-preview(\.[0-9]+)?)?\Z")


def check_api_version(api_version: str | None) -> None:
    """Azure's REST rule for this endpoint: an api-version is required, 6.x and 7.x are served."""
    if api_version is None or not api_version.strip():
        raise AzureError(
            400,
            "VssApiVersionMissingException",
            "No api-version was supplied for the request. An api-version is required "
            "(for example api-version=6.0-preview).",
        )
    if _SERVED_VERSION.match(api_version):
        return
    if not _ANY_VERSION.match(api_version):
        raise AzureError(
            400,
            "VssInvalidApiVersionException",
            f'Invalid api version string: "{api_version[:40]}". Api version string must be in the format: '
            "{Major}.{Minor}[-preview[.{ResourceVersion}]].",
        )
    raise AzureError(
        400,
        "VssVersionOutOfRangeException",
        f"The requested REST API version of {api_version} is out of range for this server (6.0 to 7.2 are supported).",
    )


def _reason_from_error(kind: str, error: PipelineError) -> dict[str, Any]:
    reason: dict[str, Any] = {"kind": kind, "message": str(error)}
    for key in ("file", "line", "column", "expression"):
        value = getattr(error, key)
        if value is not None:
            reason[key] = value
    return reason


class Emulator:
    """The emulated organisations and everything in them. Thread-safe."""

    def __init__(self, options: EmulatorOptions | None = None) -> None:
        self.options = options or EmulatorOptions()
        self._lock = threading.RLock()
        self._orgs: dict[str, dict[str, Project]] = {}  # org (lower) → project (lower) → Project
        self._org_names: dict[str, str] = {}
        self._connections: dict[tuple[str, str], Connection] = {}  # (org, webhook name) lower-cased
        self._pipelines: dict[str, dict[int, Pipeline]] = {}  # org → id → Pipeline
        self._runs: dict[str, collections.OrderedDict[int, Run]] = {}
        self._triggers: collections.deque[TriggerRecord] = collections.deque(maxlen=self.options.retain_triggers)
        self._ids: dict[str, itertools.count[int]] = {}
        self._trigger_ids = itertools.count(1)
        self._revisions: dict[tuple[int, str], int] = {}
        self._listeners: list[RunListener] = []
        self._event_sinks: list[EventSink] = []
        self._queue: Callable[[Run], None] | None = None
        self._organisations: dict[str, Organisation] = {}  # org (lower) → its data (kiosk.emulator.org)

    # ---------------------------------------------------------------- registry

    def add_org(self, org: str) -> str:
        """Serve ``org`` (idempotent; names are case-insensitive); its name as first registered."""
        with self._lock:
            self._orgs.setdefault(org.lower(), {})
            self._pipelines.setdefault(org.lower(), {})
            self._runs.setdefault(org.lower(), collections.OrderedDict())
            self._ids.setdefault(org.lower(), itertools.count(1))
            return self._org_names.setdefault(org.lower(), org)

    def add_project(self, org: str, name: str) -> Project:
        with self._lock:
            self.add_org(org)
            projects = self._orgs[org.lower()]
            existing = projects.get(name.lower())
            if existing is not None:
                return existing
            project = Project(org=self._org_names[org.lower()], name=name, id=stable_id(org.lower(), name.lower()))
            projects[name.lower()] = project
            return project

    def add_connection(
        self, org: str, project: str, *, name: str, webhook_name: str, secret: str | None, header: str | None
    ) -> Connection:
        """Register (or replace) an Incoming WebHook connection; WebHook Names are unique per org."""
        if not ALIAS_PATTERN.match(webhook_name) or not webhook_name:
            raise AzureError(
                400, "ArgumentException", f"WebHook Name {webhook_name!r} must match {ALIAS_PATTERN.pattern}"
            )
        if secret is not None and not header:
            raise AzureError(400, "ArgumentException", "a connection with a secret needs the checksum header name")
        owner = self.add_project(org, project)
        with self._lock:
            key = (org.lower(), webhook_name.lower())
            other = self._connections.get(key)
            if other is not None and other.project is not owner:
                raise AzureError(
                    409,
                    "DuplicateServiceConnectionException",
                    f"WebHook Name {webhook_name!r} is already used by a connection in project {other.project.name!r}",
                )
            connection = Connection(
                project=owner,
                name=name,
                webhook_name=webhook_name,
                secret=secret,
                header=header,
                id=stable_id(org.lower(), "connection", name.lower()),
            )
            self._connections[key] = connection
            return connection

    def add_pipeline(
        self,
        org: str,
        project: str,
        *,
        name: str,
        repository: Path,
        path: str = "azure-pipelines.yml",
        folder: str = "\\",
        default_branch: str = "refs/heads/main",
        repository_name: str | None = None,
        variables: Mapping[str, Variable] | None = None,
    ) -> Pipeline:
        """Register a YAML pipeline read from ``repository / path`` (re-read whenever the file changes)."""
        owner = self.add_project(org, project)
        with self._lock:
            pipelines = self._pipelines[org.lower()]
            for existing in pipelines.values():
                if existing.project is owner and existing.name.lower() == name.lower():
                    raise AzureError(409, "PipelineExistsException", f"a pipeline named {name!r} already exists")
            pipeline = Pipeline(
                id=len(pipelines) + 1,
                project=owner,
                name=name,
                folder=folder,
                repository=repository.resolve(),
                path=path,
                default_branch=default_branch,
                repository_name=repository_name or owner.name,
                variables=dict(variables or {}),
            )
            pipelines[pipeline.id] = pipeline
        self._source(pipeline)
        return pipeline

    def subscribe(self, listener: RunListener) -> None:
        """Be told about run state changes (the service hooks and the executor use this)."""
        self._listeners.append(listener)

    def on_event(self, sink: EventSink) -> None:
        """Be told about every change of every org (the service hooks use this)."""
        self._event_sinks.append(sink)

    def publish(self, org: str, event: OrgEvent) -> None:
        """Hand ``event`` of ``org`` to every sink, in the order they subscribed (sinks must not block)."""
        name = self.org_name(org)
        for sink in list(self._event_sinks):
            sink(name, event)

    def set_organisation(self, org: str, organisation: Organisation) -> None:
        """Serve ``organisation``'s data (projects, repos, work items…) for ``org``, which must exist."""
        with self._lock:
            self.org_name(org)
            self._organisations[org.lower()] = organisation

    def organisation(self, org: str) -> Organisation:
        """``org``'s data; 404 (Azure's org-not-found) for an org the emulator does not serve.

        Every served org has one: bootstrap builds it (generated, or holding just the configured
        projects); an org added later through :meth:`add_org` gets an empty one here.
        """
        name = self.org_name(org)
        with self._lock:
            found = self._organisations.get(org.lower())
            if found is None:
                found = Organisation(name, stable_id(org.lower(), "instance"), self.options.base_url)
                self._organisations[org.lower()] = found
            return found

    def set_queue(self, queue: Callable[[Run], None] | None) -> None:
        """Where queued runs go to be executed (None: they stay in progress until completed by API)."""
        self._queue = queue

    # ---------------------------------------------------------------- lookups

    def org_names(self) -> list[str]:
        with self._lock:
            return sorted(self._org_names.values())

    def has_org(self, org: str) -> bool:
        with self._lock:
            return org.lower() in self._org_names

    def org_name(self, org: str) -> str:
        with self._lock:
            name = self._org_names.get(org.lower())
        if name is None:
            raise AzureError(404, "OrganizationNotFoundException", f"The organization '{org}' does not exist here.")
        return name

    def projects(self, org: str) -> list[Project]:
        self.org_name(org)
        with self._lock:
            return list(self._orgs[org.lower()].values())

    def project(self, org: str, name: str) -> Project:
        self.org_name(org)
        with self._lock:
            for project in self._orgs[org.lower()].values():
                if project.name.lower() == name.lower() or project.id == name.lower():
                    return project
        raise AzureError(
            404, "ProjectDoesNotExistWithNameException", f"TF200016: The following project does not exist: {name}."
        )

    def pipelines(self, org: str, project: str) -> list[Pipeline]:
        owner = self.project(org, project)
        with self._lock:
            return [p for p in self._pipelines[org.lower()].values() if p.project is owner]

    def pipeline(self, org: str, project: str, pipeline_id: int) -> Pipeline:
        owner = self.project(org, project)
        with self._lock:
            pipeline = self._pipelines[org.lower()].get(pipeline_id)
        if pipeline is None or pipeline.project is not owner:
            raise AzureError(404, "PipelineNotFoundException", f"Pipeline with id {pipeline_id} was not found.")
        return pipeline

    def connections(self, org: str) -> list[Connection]:
        self.org_name(org)
        with self._lock:
            return [c for (o, _), c in self._connections.items() if o == org.lower()]

    def runs(self, org: str, project: str, pipeline_id: int | None = None) -> list[Run]:
        """Newest first, like Azure's list."""
        owner = self.project(org, project)
        with self._lock:
            runs = [
                r
                for r in self._runs[org.lower()].values()
                if r.pipeline.project is owner and (pipeline_id is None or r.pipeline.id == pipeline_id)
            ]
        return runs[::-1]

    def run(self, org: str, run_id: int, project: str | None = None) -> Run:
        self.org_name(org)
        with self._lock:
            run = self._runs[org.lower()].get(run_id)
        if run is None or (project is not None and run.pipeline.project is not self.project(org, project)):
            raise AzureError(404, "BuildNotFoundException", f"The requested build {run_id} could not be found.")
        return run

    def triggers(
        self,
        org: str | None = None,
        webhook_name: str | None = None,
        limit: int = 100,
        *,
        orgs: frozenset[str] | None = None,
    ) -> list[TriggerRecord]:
        """Newest first; ``orgs`` (lower case) keeps only those orgs' records (a PAT sees its own orgs)."""
        with self._lock:
            records = list(self._triggers)
        picked = [
            r
            for r in reversed(records)
            if (org is None or r.org.lower() == org.lower())
            and (orgs is None or r.org.lower() in orgs)
            and (webhook_name is None or r.webhook_name.lower() == webhook_name.lower())
        ]
        return picked[:limit]

    def trigger_record(self, trigger_id: int) -> TriggerRecord:
        with self._lock:
            for record in self._triggers:
                if record.id == trigger_id:
                    return record
        raise AzureError(404, "TriggerRecordNotFoundException", f"trigger call {trigger_id} is not recorded")

    # ---------------------------------------------------------------- pipeline sources

    def _source(self, pipeline: Pipeline) -> PipelineSource:
        """The pipeline's current YAML and webhook resources, re-read only when the file changed."""
        file = pipeline.repository / pipeline.path
        try:
            stat = file.stat()
            version = (stat.st_mtime_ns, stat.st_size)
        except OSError as exc:
            version = (-1, -1)
            if pipeline.source is None or pipeline.source.version != version:
                error = PipelineError(f"cannot read the pipeline file: {exc.strerror}", file=pipeline.path)
                pipeline.source = PipelineSource(version, "", [], error)
            return pipeline.source
        current = pipeline.source
        if current is not None and current.version == version:
            return current
        try:
            text = file.read_text(encoding="utf-8")
            document = to_plain(parse_yaml(text, pipeline.path))
            if not isinstance(document, dict):
                raise PipelineError("the pipeline file must hold a YAML mapping", file=pipeline.path)
            source = PipelineSource(version, text, webhook_resources(document, file=pipeline.path), None)
        except (OSError, UnicodeDecodeError) as exc:
            source = PipelineSource(version, "", [], PipelineError(f"cannot read: {exc}", file=pipeline.path))
        except PipelineError as exc:
            source = PipelineSource(version, "", [], exc)
        if current is not None and current.version != version:
            pipeline.revision += 1
        pipeline.source = source
        return source

    @staticmethod
    def _loader(pipeline: Pipeline) -> Callable[[str], str]:
        """The pipeline's template loader, built once (resolving the repository path costs a syscall per part)."""
        if pipeline.loader is None:
            pipeline.loader = directory_loader(pipeline.repository)
        return pipeline.loader

    # ---------------------------------------------------------------- the trigger

    def trigger(self, org: str, webhook_name: str, headers: Mapping[str, str], body: bytes) -> TriggerRecord:
        """Handle one incoming-webhook call (``headers`` keys lower-case). Raises AzureError to refuse it.

        Every call is recorded, refused or not, so "why did nothing run?" always has an answer.
        """
        with self._lock:
            record = TriggerRecord(
                id=next(self._trigger_ids), received_at=_now(), org=org, webhook_name=webhook_name, body_bytes=len(body)
            )
            self._triggers.append(record)
        try:
            self._trigger(record, headers, body)
        except AzureError as exc:
            record.status = exc.status
            record.error = {"typeKey": exc.type_key, "message": exc.message}
            raise
        return record

    def _trigger(self, record: TriggerRecord, headers: Mapping[str, str], body: bytes) -> None:
        org = self.org_name(record.org)
        record.org = org
        with self._lock:
            connection = self._connections.get((org.lower(), record.webhook_name.lower()))
            pipelines = list(self._pipelines[org.lower()].values())
        if connection is None:
            raise AzureError(500, "WebHookNotFoundException", _NOT_FOUND.format(name=record.webhook_name))
        record.connection = connection.name
        listening: list[tuple[Pipeline, WebhookResource | None, PipelineSource]] = []
        for pipeline in pipelines:
            source = self._source(pipeline)
            if source.error is not None:
                # Its resources cannot be read, so Azure would not know it listens: say so anyway.
                listening.append((pipeline, None, source))
                continue
            for resource in source.resources:
                if resource.connection.lower() == connection.name.lower():
                    listening.append((pipeline, resource, source))
                    break
        if not any(resource is not None for _, resource, _ in listening):
            for pipeline, _, source in listening:
                record.outcomes.append(self._unreadable(pipeline, source))
            raise AzureError(500, "WebHookNotFoundException", _NOT_FOUND.format(name=record.webhook_name))
        self._check_checksum(connection, headers, body)
        check_json_content_type(headers.get("content-type"), has_body=bool(body))
        payload = parse_json(body)
        if not isinstance(payload, dict):
            raise AzureError(400, "InvalidPayloadException", "The request body must be a JSON object.")
        for pipeline, hook, source in listening:
            if hook is None:
                record.outcomes.append(self._unreadable(pipeline, source))
                continue
            record.outcomes.append(self._webhook_run(record, pipeline, hook, source, payload))

    @staticmethod
    def _unreadable(pipeline: Pipeline, source: PipelineSource) -> PipelineOutcome:
        assert source.error is not None
        return PipelineOutcome(
            pipeline.id,
            pipeline.name,
            pipeline.project.name,
            None,
            reason=_reason_from_error("pipeline_unreadable", source.error),
        )

    def _check_checksum(self, connection: Connection, headers: Mapping[str, str], body: bytes) -> None:
        if connection.secret is None:
            return
        assert connection.header is not None
        given = headers.get(connection.header.lower(), "")
        if not given.strip():
            raise AzureError(
                500,
                "RequiredHeaderSignatureNotFoundException",
                f"RequiredHeaderSignatureNotFound: the request has no {connection.header} header with the "
                "checksum the service connection requires.",
            )
        if not verify_azure_checksum(connection.secret, body, given, allow_sha1_prefix=self.options.accept_sha1_prefix):
            raise AzureError(
                500,
                "WebHookChecksumMismatchException",
                f"The checksum in the {connection.header} header does not match the HMAC-SHA1 of the request "
                "body (sign the exact bytes sent, minified JSON).",
            )

    def _webhook_run(
        self,
        record: TriggerRecord,
        pipeline: Pipeline,
        resource: WebhookResource,
        source: PipelineSource,
        payload: dict[str, Any],
    ) -> PipelineOutcome:
        outcome = PipelineOutcome(pipeline.id, pipeline.name, pipeline.project.name, resource.alias)
        mismatch = check_filters(payload, resource.filters, case_insensitive=self.options.case_insensitive_filters)
        if mismatch is not None:
            outcome.reason = {"kind": "filter_mismatch", "message": mismatch.describe(), "path": mismatch.filter.path}
            return outcome
        variables = self._run_variables(pipeline, reason="ResourceTrigger")
        variables["resources.triggeringAlias"] = Variable(resource.alias)
        variables["resources.triggeringCategory"] = Variable("webhook")
        try:
            run = self._queue_run(
                pipeline,
                text=source.text,
                reason="ResourceTrigger",
                variables=variables,
                webhook_payloads={resource.alias: payload},
                template_parameters={},
                trigger_id=record.id,
            )
        except PipelineError as exc:
            outcome.reason = _reason_from_error("expansion_failed", exc)
            return outcome
        outcome.run_id = run.id
        return outcome

    # ---------------------------------------------------------------- runs

    def _run_variables(self, pipeline: Pipeline, *, reason: str) -> dict[str, Variable]:
        project = pipeline.project
        branch = pipeline.default_branch
        variables = dict(pipeline.variables)
        collection = f"{self.options.base_url}/{project.org}/"
        system = {
            "Build.Reason": reason,
            "Build.DefinitionName": pipeline.name,
            "System.DefinitionId": str(pipeline.id),
            "Build.Repository.Name": pipeline.repository_name,
            "Build.Repository.Provider": "TfsGit",
            "Build.Repository.Uri": f"{collection}{project.name}/_git/{pipeline.repository_name}",
            "Build.SourceBranch": branch,
            "Build.SourceBranchName": branch.rsplit("/", 1)[-1],
            "Build.RequestedFor": "kiosk emulator",
            "Build.QueuedBy": "kiosk emulator",
            "System.TeamProject": project.name,
            "System.TeamProjectId": project.id,
            "System.CollectionUri": collection,
            "System.TeamFoundationCollectionUri": collection,
            "System.HostType": "build",
        }
        variables.update({name: Variable(value) for name, value in system.items()})
        return variables

    def _queue_run(
        self,
        pipeline: Pipeline,
        *,
        text: str,
        reason: str,
        variables: dict[str, Variable],
        webhook_payloads: Mapping[str, Any],
        template_parameters: Mapping[str, Any],
        trigger_id: int | None,
        stages_to_skip: Iterable[str] = (),
    ) -> Run:
        """Expand, name and store a run; raises PipelineError when Azure would queue nothing."""
        compile_time = {name: v.value for name, v in variables.items() if not v.secret}
        document = expand_pipeline(
            text,
            file=pipeline.path,
            parameters=template_parameters,
            webhook_payloads=webhook_payloads,
            variables=compile_time,
            load=self._loader(pipeline),
        )
        document = _skip_stages(document, stages_to_skip)
        version = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
        variables["Build.SourceVersion"] = Variable(version)
        name_format = document.get("name")
        with self._lock:
            run_id = next(self._ids[pipeline.project.org.lower()])
            variables["Build.BuildId"] = Variable(str(run_id))
            variables["Build.BuildUri"] = Variable(f"vstfs:///Build/Build/{run_id}")
            now = _now()
            name = format_build_number(
                name_format if isinstance(name_format, str) else None,
                variables={n: v.value for n, v in variables.items() if not v.secret},
                now=now,
                next_revision=lambda key: self._next_revision(pipeline.id, key),
            )
            variables["Build.BuildNumber"] = Variable(name)
            run = Run(
                id=run_id,
                pipeline=pipeline,
                name=name,
                reason=reason,
                created=now,
                document=document,
                variables=variables,
                template_parameters=dict(template_parameters),
                source_branch=pipeline.default_branch,
                source_version=version,
                trigger_id=trigger_id,
            )
            runs = self._runs[pipeline.project.org.lower()]
            runs[run_id] = run
            self._trim(runs)
        self._changed(run)
        if self._queue is not None:
            self._queue(run)
        return run

    def _next_revision(self, pipeline_id: int, key: str) -> int:
        revision = self._revisions.get((pipeline_id, key), 0) + 1
        self._revisions[(pipeline_id, key)] = revision
        return revision

    def _trim(self, runs: collections.OrderedDict[int, Run]) -> None:
        """Drop the oldest finished runs past the retention limit (runs in progress are kept)."""
        excess = len(runs) - self.options.retain_runs
        if excess <= 0:
            return
        for run_id in [r.id for r in runs.values() if r.state == "completed"][:excess]:
            del runs[run_id]

    def preview(
        self,
        pipeline: Pipeline,
        *,
        yaml_override: str | None,
        template_parameters: Mapping[str, Any],
        variables: Mapping[str, Variable],
        stages_to_skip: Iterable[str] = (),
    ) -> str:
        """The Runs API's ``previewRun``: the final YAML, nothing queued."""
        text = yaml_override if yaml_override is not None else self._readable_text(pipeline)
        all_variables = {**self._run_variables(pipeline, reason="Manual"), **variables}
        try:
            document = expand_pipeline(
                text,
                file=pipeline.path,
                parameters=template_parameters,
                variables={n: v.value for n, v in all_variables.items() if not v.secret},
                load=self._loader(pipeline),
            )
            return dump_yaml(_skip_stages(document, stages_to_skip))
        except PipelineError as exc:
            raise _validation_error(exc) from None

    def queue_manual_run(
        self,
        pipeline: Pipeline,
        *,
        template_parameters: Mapping[str, Any],
        variables: Mapping[str, Variable],
        stages_to_skip: Iterable[str] = (),
    ) -> Run:
        """The Runs API without ``previewRun``: queue a run (``Build.Reason`` = Manual)."""
        text = self._readable_text(pipeline)
        all_variables = {**self._run_variables(pipeline, reason="Manual"), **variables}
        try:
            return self._queue_run(
                pipeline,
                text=text,
                reason="Manual",
                variables=all_variables,
                webhook_payloads={},
                template_parameters=template_parameters,
                trigger_id=None,
                stages_to_skip=stages_to_skip,
            )
        except PipelineError as exc:
            raise _validation_error(exc) from None

    def _readable_text(self, pipeline: Pipeline) -> str:
        source = self._source(pipeline)
        if source.error is not None:
            raise _validation_error(source.error)
        return source.text

    def final_yaml(self, run: Run) -> str:
        """The run's expanded YAML, rendered on first request (dumping YAML on every trigger is waste)."""
        if run.final_yaml is None:
            run.final_yaml = dump_yaml(run.document)
        return run.final_yaml

    # ---------------------------------------------------------------- run state (from the executor or the API)

    def _changed(self, run: Run) -> None:
        for listener in list(self._listeners):
            try:
                listener(run)
            except Exception:  # a listener's bug must not break the trigger or the runner
                log.exception("run listener failed", extra={"run_id": run.id})

    def complete_run(self, run: Run, result: str) -> Run:
        """Finish a run (``succeeded``, ``partiallySucceeded``, ``failed`` or ``canceled``)."""
        if result not in ("succeeded", "partiallySucceeded", "failed", "canceled"):
            raise AzureError(400, "ArgumentException", f"unknown result {result!r}")
        with self._lock:
            if run.state == "completed":
                raise AzureError(
                    409, "BuildStatusInvalidChangeException", f"run {run.id} is already completed ({run.result})"
                )
            run.state = "completed"
            run.result = result
            run.finished = _now()
        self._changed(run)
        return run

    def cancel_run(self, run: Run) -> Run:
        """Ask a run to stop; the executor finishes it as ``canceled`` (at once when nothing executes it)."""
        with self._lock:
            if run.state == "completed":
                return run
            run.state = "canceling"
            run.cancel.set()
        self._changed(run)
        if self._queue is None:
            self.complete_run(run, "canceled")
        return run

    def append_log(self, run: Run, log_id: int, line: str) -> None:
        """Store one log line with Azure's timestamp prefix."""
        now = _now()
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
        with self._lock:
            lines = run.logs.get(log_id)
            if lines is None:
                lines = run.logs[log_id] = []
                run.log_created[log_id] = now
            lines.append(f"{stamp} {line}")
            run.stream.append(f"{stamp} {line}")
            run.log_changed[log_id] = now


def _skip_stages(document: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    skip = {n.lower() for n in names}
    if not skip:
        return document
    stages = document.get("stages")
    known = (
        {str(s.get("stage", "")).lower() for s in stages if isinstance(s, dict)} if isinstance(stages, list) else set()
    )
    unknown = sorted(skip - known)
    if unknown:
        raise PipelineError(f"stagesToSkip names stages the pipeline does not have: {', '.join(unknown)}")
    assert isinstance(stages, list)
    kept = [s for s in stages if not (isinstance(s, dict) and str(s.get("stage", "")).lower() in skip)]
    return {**document, "stages": kept}


def _validation_error(error: PipelineError) -> AzureError:
    """Azure's Runs API reply for YAML that does not expand: ``/file (Line: n, Col: m): message``."""
    where = ""
    if error.file is not None:
        where = "/" + error.file.lstrip("/")
        if error.line is not None:
            where += f" (Line: {error.line}, Col: {error.column or 1})"
        where += ": "
    text = error.message + (f' (expression "{error.expression}")' if error.expression else "")
    return AzureError(400, "PipelineValidationException", where + text)
