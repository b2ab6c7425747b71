"""Build a running emulator from its config file: registry, secrets, executor, HTTP app.

Kept apart from the CLI so tests, the demo and ``kiosk emulator`` start the emulator the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI

from kiosk.config.secrets import resolve_secret
from kiosk.emulator.access import AccessPolicy
from kiosk.emulator.activity import ActivityGenerator, ActivitySpec, attach_activity
from kiosk.emulator.app import create_emulator_app
from kiosk.emulator.config import EmulatorConfig, GenerateSpec, OrgSpec
from kiosk.emulator.executor import RunExecutor
from kiosk.emulator.hooks import RunEvents, ServiceHooks
from kiosk.emulator.models import stable_id
from kiosk.emulator.org.generate import GenerateSettings, add_configured_project, generate_organisation
from kiosk.emulator.org.model import Organisation
from kiosk.emulator.service import Emulator, EmulatorOptions
from kiosk.emulator.switches import Switches, SwitchSettings
from kiosk.errors import ConfigError
from kiosk.pipelines.variables import Variable
from kiosk.settings import home_from_env

__all__ = ["EmulatorServer", "build_emulator", "emulator_work_dir", "organisation_for"]


@dataclass
class EmulatorServer:
    emulator: Emulator
    app: FastAPI
    executor: RunExecutor | None
    work_dir: Path


def build_emulator(
    config: EmulatorConfig,
    *,
    config_dir: Path,
    base_url: str,
    work_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    execute_runs: bool | None = None,
    generate: GenerateSpec | None = None,
    activity: ActivitySpec | None = None,
) -> EmulatorServer:
    """Everything ``config`` declares, ready to serve at ``base_url``.

    Secrets are resolved here (a missing variable or file stops the start with a ConfigError
    naming the reference), PATs included; an emulator without any org (hence without any PAT)
    refuses to start unless ``settings.allowAnonymous`` says so. ``execute_runs`` overrides the
    config's ``executeRuns``; ``work_dir`` (``--work-dir``) overrides where runs' workspaces go
    (see :func:`emulator_work_dir`). ``generate`` (``--generate``) replaces every org's
    ``generate:`` (see :func:`organisation_for`). ``activity`` (``--activity``) replaces the config's
    ``activity:``: the activity generator then runs with the app (:mod:`kiosk.emulator.activity`).
    """
    environ = os.environ if env is None else env
    settings = config.settings
    emulator = Emulator(
        EmulatorOptions(
            base_url=base_url.rstrip("/"),
            accept_sha1_prefix=settings.accept_sha1_prefix,
            case_insensitive_filters=settings.case_insensitive_filters,
            retain_runs=settings.retain_runs,
            retain_triggers=settings.retain_triggers,
        )
    )
    tokens: dict[str, list[str]] = {}
    for org in config.orgs:
        tokens[org.name] = [
            resolve_secret(ref, base_dir=config_dir, env=environ).reveal() for ref in org.personal_access_tokens
        ]
        emulator.add_org(org.name)
        for project in org.projects:
            emulator.add_project(org.name, project.name)
            for connection in project.connections:
                secret = (
                    resolve_secret(connection.secret, base_dir=config_dir, env=environ).reveal()
                    if connection.secret is not None
                    else None
                )
                emulator.add_connection(
                    org.name,
                    project.name,
                    name=connection.name,
                    webhook_name=connection.webhook_name,
                    secret=secret,
                    header=connection.header,
                )
            for spec in project.pipelines:
                variables = {name: Variable(value) for name, value in spec.variables.items()}
                for name, ref in spec.secret_variables.items():
                    variables[name] = Variable(resolve_secret(ref, base_dir=config_dir, env=environ).reveal(), True)
                emulator.add_pipeline(
                    org.name,
                    project.name,
                    name=spec.name,
                    repository=(config_dir / spec.repository),
                    path=spec.path,
                    folder=spec.folder,
                    default_branch=spec.default_branch,
                    repository_name=spec.repository_name,
                    variables=variables,
                )
    for org in config.orgs:
        emulator.set_organisation(org.name, organisation_for(org, emulator, generate=generate))
    work_dir = emulator_work_dir(work_dir, settings.work_dir, environ)
    execute = settings.execute_runs if execute_runs is None else execute_runs
    if not config.orgs and not settings.allow_anonymous:
        raise ConfigError(
            "the emulator serves no org, so no personal access token could open its REST API: declare orgs "
            "with personalAccessTokens in its config (--config), or set settings.allowAnonymous: true"
        )
    policy = AccessPolicy(tokens, allow_anonymous=settings.allow_anonymous)
    home = home_from_env(environ)
    if work_dir.is_relative_to(home):  # KIOSK_HOME is private (0700) when kiosk creates it
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
    hooks = ServiceHooks(emulator.options.base_url, settings.hooks)
    emulator.on_event(hooks.publish)  # every org change, pipeline runs' included, reaches the hooks
    run_events = RunEvents(emulator, wanted=hooks.wants)
    emulator.subscribe(run_events.run_changed)
    executor = (
        RunExecutor(emulator, work_dir, settings.run_workers, on_record=run_events.record_changed) if execute else None
    )
    app = create_emulator_app(
        emulator,
        work_dir=work_dir,
        executor=executor,
        hooks=hooks,
        max_body_bytes=settings.max_body_bytes,
        policy=policy,
        switches=Switches(SwitchSettings(throttling=settings.throttling, faults=settings.faults)),
    )
    activity = activity or config.activity
    if activity is not None:
        attach_activity(app, ActivityGenerator(emulator, activity))
    return EmulatorServer(emulator, app, executor, work_dir)


def emulator_work_dir(explicit: Path | None, configured: str | None, env: Mapping[str, str]) -> Path:
    """Where runs' workspaces and the repositories of pipelines registered over HTTP go.

    ``explicit`` (``--work-dir``) first, then the config's ``settings.workDir`` (a relative one
    under ``KIOSK_HOME``), else ``$KIOSK_HOME/emulator``. Never beside the config file: that put
    run output into the source tree for the demo's config, and into site-packages for an
    installed kiosk.
    """
    if explicit is not None:
        return explicit.expanduser().absolute()
    home = home_from_env(env)
    if configured:
        return home / Path(configured).expanduser()  # an absolute workDir replaces home in the join
    return home / "emulator"


def organisation_for(org: OrgSpec, emulator: Emulator, *, generate: GenerateSpec | None = None) -> Organisation:
    """The data the emulator serves for ``org``: generated (``generate:`` or ``--generate``) or empty,
    plus the config's projects.

    Configured and generated projects coexist: generated names avoid the configured ones, and each
    configured project enters the organisation with the id its pipelines already use (a default
    team, area/iteration roots, boards and a wiki, but no generated repositories or work items).
    Generated dates count back from the start of the current UTC day, so "@today - 7" finds recent
    items; names, ids and contents depend on the seed only.
    """
    spec = generate or org.generate
    org_id = stable_id(org.name.lower(), "instance")
    base_url = emulator.options.base_url
    if spec is None:
        organisation = Organisation(org.name, org_id, base_url)
    else:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        # ``generate:`` holds exactly the generator's settings, checked as config.
        settings = GenerateSettings(**spec.model_dump())
        organisation = generate_organisation(
            org.name,
            base_url,
            settings,
            now=today,
            org_id=org_id,
            reserved_project_names=[p.name for p in org.projects],
        )
    for project in org.projects:
        add_configured_project(organisation, project.name, emulator.project(org.name, project.name).id)
    return organisation
