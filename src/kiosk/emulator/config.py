"""The emulator's config file: organisations, projects, Incoming WebHook connections and pipelines.

Shaped after what a user clicks together in Azure DevOps (an org holds projects; a project holds
"Incoming WebHook" service connections and YAML pipelines), so a setup can be described once in a
file and checked into the repository that holds the pipelines::

    settings: {executeRuns: true}
    orgs:
      - name: demo
        personalAccessTokens:         # the REST API needs one of these (Basic auth, any user name)
          - {env: DEMO_PAT}
        projects:
          - name: demo
            connections:
              - name: IncomingWH              # the service connection's name (pipelines refer to it)
                webhookName: WebHook          # the WebHook Name in the trigger URL
                secret: {env: DEMO_WEBHOOK_SECRET}
                header: X-Port-Signature      # where the checksum travels
            pipelines:
              - name: hello
                repository: pipelines/        # a directory: the repository `checkout: self` gets
                path: hello.yml               # the YAML file inside it (default azure-pipelines.yml)

Secrets follow kiosk.yaml's rule: references only (``{env: NAME}`` / ``{file: PATH}``).

Every org needs at least one personal access token, as an Azure DevOps organisation does: the
emulator runs pipelines' scripts on this machine, so an open REST API would let anything that can
reach it (a web page included) run commands. ``settings.allowAnonymous: true`` is the explicit
opt-out, for throwaway setups where nothing else can reach the port.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from kiosk.config.loader import load_model, parse_model
from kiosk.config.secrets import SecretRef
from kiosk.emulator.activity import ActivitySpec
from kiosk.emulator.faults import FaultSpec
from kiosk.emulator.hooks.settings import HooksSettings
from kiosk.emulator.throttling import ThrottlingSpec
from kiosk.errors import ConfigError
from kiosk.pipelines.webhooks import ALIAS_PATTERN

__all__ = [
    "ConnectionSpec",
    "EmulatorConfig",
    "EmulatorSettings",
    "GenerateSpec",
    "OrgSpec",
    "PipelineSpec",
    "ProjectSpec",
    "load_emulator_config",
    "parse_emulator_config",
    "parse_generate_option",
]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$"
Name = Annotated[str, Field(pattern=_NAME)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, populate_by_name=True)


class EmulatorSettings(_Strict):
    """Behaviour where Azure is undocumented or where a server owner needs a switch."""

    execute_runs: bool = Field(
        default=True,
        alias="executeRuns",
        description="Run queued pipelines' scripts on this machine. Off: runs are queued and stay in progress "
        "until completed through the API (for servers where running arbitrary scripts is not wanted).",
    )
    accept_sha1_prefix: bool = Field(default=False, alias="acceptSha1Prefix")
    case_insensitive_filters: bool = Field(default=False, alias="caseInsensitiveFilters")
    max_body_bytes: int = Field(default=4 * 1024 * 1024, alias="maxBodyBytes", ge=1024, le=64 * 1024 * 1024)
    run_workers: int = Field(default=2, alias="runWorkers", ge=1, le=64)
    retain_runs: int = Field(default=10_000, alias="retainRuns", ge=10)
    retain_triggers: int = Field(default=10_000, alias="retainTriggers", ge=10)
    work_dir: str | None = Field(default=None, alias="workDir")
    throttling: ThrottlingSpec | None = Field(
        default=None,
        description="Azure's rate limiting (TSTU budget per identity over a sliding window); off when absent.",
    )
    faults: list[FaultSpec] = Field(
        default_factory=list, max_length=1000, description="Fault injection rules per route pattern; none by default."
    )
    hooks: HooksSettings = Field(
        default_factory=HooksSettings,
        description="Service-hook delivery: retry schedule scale, attempt timeout, http to loopback, retention.",
    )
    allow_anonymous: bool = Field(
        default=False,
        alias="allowAnonymous",
        description="Serve the REST API without personal access tokens. Off by default: an emulator that "
        "executes runs would otherwise run any script anything that reaches its port asks for.",
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_access_token(cls, data: Any) -> Any:
        if isinstance(data, dict) and "accessToken" in data:
            raise ValueError(
                "settings.accessToken was replaced by a PAT per org, as Azure DevOps has them: "
                "orgs[].personalAccessTokens: [{env: NAME}]"
            )
        return data


class ConnectionSpec(_Strict):
    name: Name
    webhook_name: str = Field(alias="webhookName", min_length=1, max_length=256, pattern=ALIAS_PATTERN.pattern)
    secret: SecretRef | None = None
    header: str | None = Field(default=None, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")

    @model_validator(mode="after")
    def _header_with_secret(self) -> Self:
        if self.secret is not None and self.header is None:
            raise ValueError("a connection with a secret needs the header that carries the checksum (header:)")
        return self


class PipelineSpec(_Strict):
    name: Name
    repository: str = Field(default=".", description="Directory holding the pipeline's repository.")
    path: str = Field(default="azure-pipelines.yml", min_length=1)
    folder: str = "\\"
    default_branch: str = Field(default="refs/heads/main", alias="defaultBranch", pattern=r"^refs/\S+$")
    repository_name: str | None = Field(default=None, alias="repositoryName")
    variables: dict[str, str] = Field(default_factory=dict)
    secret_variables: dict[str, SecretRef] = Field(default_factory=dict, alias="secretVariables")


class ProjectSpec(_Strict):
    name: Name
    connections: list[ConnectionSpec] = Field(default_factory=list)
    pipelines: list[PipelineSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        for kind, names in (
            ("connection", [c.name for c in self.connections]),
            ("pipeline", [p.name for p in self.pipelines]),
        ):
            seen: set[str] = set()
            for name in names:
                if name.lower() in seen:
                    raise ValueError(f"two {kind}s named {name!r} in project {self.name!r}")
                seen.add(name.lower())
        return self


class GenerateSpec(_Strict):
    """A generated organisation's size (``generate:`` under an org); the same seed gives the same org."""

    projects: int = Field(default=3, ge=0, le=1000)
    repos: int = Field(default=20, ge=0, le=100_000)
    workitems: int = Field(default=200, ge=0, le=1_000_000)
    seed: int = Field(default=0, ge=0)
    users: int | None = Field(default=None, ge=1, le=100_000)
    pull_requests: int = Field(default=3, alias="pullRequests", ge=0, le=1000)
    builds: int = Field(default=3, ge=0, le=1000)

    @model_validator(mode="after")
    def _needs_projects(self) -> Self:
        if self.projects == 0 and (self.repos or self.workitems):
            raise ValueError("generate: repos and workitems need at least one project (projects >= 1)")
        return self


class OrgSpec(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,49}$")]
    generate: GenerateSpec | None = Field(
        default=None, description="Fill the org with generated projects, repositories, work items and more."
    )
    personal_access_tokens: list[SecretRef] = Field(
        default_factory=list,
        alias="personalAccessTokens",
        description="The PATs that open this org's REST API (several: rotate without a gap).",
    )
    projects: list[ProjectSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        hooks: set[str] = set()
        for project in self.projects:
            if project.name.lower() in seen:
                raise ValueError(f"two projects named {project.name!r} in org {self.name!r}")
            seen.add(project.name.lower())
            for connection in project.connections:
                # The trigger URL names the org and the WebHook Name only: it must be unique per org.
                if connection.webhook_name.lower() in hooks:
                    raise ValueError(
                        f"two connections with webhookName {connection.webhook_name!r} in org {self.name!r}"
                    )
                hooks.add(connection.webhook_name.lower())
        return self


class EmulatorConfig(_Strict):
    settings: EmulatorSettings = Field(default_factory=EmulatorSettings)
    orgs: list[OrgSpec] = Field(default_factory=list)
    activity: ActivitySpec | None = Field(
        default=None,
        description="Make a realistic mix of changes at a rate (rate: 50/s, seed: 7), for demos and load tests.",
    )

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        for org in self.orgs:
            if org.name.lower() in seen:
                raise ValueError(f"two orgs named {org.name!r}")
            seen.add(org.name.lower())
        return self

    @field_validator("orgs")
    @classmethod
    def _pat_per_org(cls, orgs: list[OrgSpec], info: ValidationInfo) -> list[OrgSpec]:
        settings = info.data.get("settings")
        if settings is not None and settings.allow_anonymous:
            return orgs
        for org in orgs:
            if not org.personal_access_tokens:
                raise ValueError(
                    f"org {org.name!r} has no personalAccessTokens: its REST API would be open to anything "
                    "that reaches the emulator (declare one, e.g. personalAccessTokens: [{env: NAME}], or set "
                    "settings.allowAnonymous: true)"
                )
        return orgs


_GENERATE_KEYS: Final = {
    "projects": "projects",
    "repos": "repos",
    "workitems": "workitems",
    "seed": "seed",
    "users": "users",
    "pullrequests": "pullRequests",
    "builds": "builds",
}


def parse_generate_option(text: str) -> GenerateSpec:
    """``projects=50,repos=2000,workitems=100000,seed=7`` (``kiosk emulator --generate``) → a GenerateSpec.

    Same fields and limits as ``generate:`` in the config; errors name the part at fault.
    """
    values: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, raw = part.partition("=")
        name = _GENERATE_KEYS.get(key.strip().lower().replace("_", ""))
        if not sep or name is None:
            raise ConfigError(f"--generate: {part!r} is not one of " + ", ".join(f"{k}=N" for k in _GENERATE_KEYS))
        try:
            values[name] = int(raw.strip().replace("_", ""))
        except ValueError:
            raise ConfigError(f"--generate: {key.strip()} must be a whole number, not {raw.strip()!r}") from None
    try:
        return GenerateSpec.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'generate'}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"--generate: {problems}") from None


def load_emulator_config(path: Path) -> EmulatorConfig:
    """Read and validate an emulator config file; errors name the file, line and field."""
    config, _ = load_model(path, EmulatorConfig)
    return _check_files(config, path)


def parse_emulator_config(text: str, path: Path) -> EmulatorConfig:
    """Validate config ``text`` as if read from ``path`` (repositories are relative to its directory)."""
    config, _ = parse_model(text, path, EmulatorConfig)
    return _check_files(config, path)


def _check_files(config: EmulatorConfig, path: Path) -> EmulatorConfig:
    for org in config.orgs:
        for project in org.projects:
            for pipeline in project.pipelines:
                repository = (path.parent / pipeline.repository).resolve()
                if not (repository / pipeline.path).is_file():
                    raise ConfigError(
                        f"{path}: org {org.name}, project {project.name}, pipeline {pipeline.name}: "
                        f"{repository / pipeline.path} is not a file"
                    )
    return config
