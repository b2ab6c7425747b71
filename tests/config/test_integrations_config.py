"""kiosk.yaml's ``integrations:``: loaded with file/line errors, mappings inline or in files, Ocean's
environment applied, secrets by reference only."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tests.support.config_files import config_error, write_config

from kiosk.config import KioskConfig, load_config
from kiosk.config.integrations import resolve_integrations
from kiosk.errors import ConfigError
from kiosk.ingest.defaults import default_mapping

PAT = "pat-3f9c-value-that-must-never-print"
HOOK_SECRET = "hook-secret-value-that-must-never-print"

#: One integration in kiosk.yaml, in the names of Ocean's Helm values.
HELM_STYLE_YAML = """
integrations:
  - identifier: ado
    type: azure-devops
    config:
      organizationUrl: https://dev.azure.com/contoso
      personalAccessToken: {env: ADO_PAT}
      isProjectsLimited: false
      excludedTags: [archived]
      webhookSecret: {file: secrets/ado-hook}
    eventListener: {type: ONCE}
    scheduledResyncInterval: 90
    initializePortResources: false
    sendRawDataExamples: false
"""
#: The same integration as a Helm chart sets it, in Ocean's environment variables.
HELM_ENV = {
    "OCEAN__INTEGRATION__IDENTIFIER": "ado",
    "OCEAN__INTEGRATION__TYPE": "azure-devops",
    "OCEAN__INTEGRATION__CONFIG__ORGANIZATION_URL": "https://dev.azure.com/contoso",
    "OCEAN__INTEGRATION__CONFIG__PERSONAL_ACCESS_TOKEN": PAT,
    "OCEAN__INTEGRATION__CONFIG__IS_PROJECTS_LIMITED": "false",
    "OCEAN__INTEGRATION__CONFIG__EXCLUDED_TAGS": '["archived"]',
    "OCEAN__INTEGRATION__CONFIG__WEBHOOK_SECRET": HOOK_SECRET,
    "OCEAN__EVENT_LISTENER__TYPE": "ONCE",
    "OCEAN__SCHEDULED_RESYNC_INTERVAL": "90",
    "OCEAN__INITIALIZE_PORT_RESOURCES": "false",
    "OCEAN__SEND_RAW_DATA_EXAMPLES": "false",
}
#: What kiosk.yaml's references read.
SECRETS_ONLY = {"ADO_PAT": PAT}


@pytest.fixture(autouse=True)
def hook_secret_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ado-hook").write_text(HOOK_SECRET + "\n")


def integration_yaml(config: str = "", extra: str = "") -> str:
    """kiosk.yaml with one integration; ``config`` replaces the default config lines."""
    config = config or ("organizationUrl: https://dev.azure.com/contoso\n      personalAccessToken: {env: ADO_PAT}")
    return f"""
integrations:
  - identifier: ado
    type: azure-devops
    config:
      {config}
{extra}"""


def test_helm_values_in_kiosk_yaml_and_in_the_environment_give_the_same_integration(tmp_path: Path) -> None:
    from_yaml = resolve_integrations(
        load_config(write_config(tmp_path, HELM_STYLE_YAML)), env=SECRETS_ONLY, base_dir=tmp_path
    )
    from_env = resolve_integrations(KioskConfig(), env=HELM_ENV, base_dir=tmp_path)
    # The same in every setting; only where each secret is read from differs (each its own reference).
    references = {"config": {"personalAccessToken", "webhookSecret"}}
    assert [i.spec.model_dump(exclude=references) for i in from_yaml] == [
        i.spec.model_dump(exclude=references) for i in from_env
    ]
    assert from_env[0].spec.config.personalAccessToken.env == "OCEAN__INTEGRATION__CONFIG__PERSONAL_ACCESS_TOKEN"
    assert from_yaml[0].spec.config.webhookSecret is not None
    assert from_yaml[0].spec.config.webhookSecret.file == "secrets/ado-hook"
    for integration in (*from_yaml, *from_env):
        assert integration.personal_access_token.reveal() == PAT
        assert integration.webhook_secret is not None and integration.webhook_secret.reveal() == HOOK_SECRET
        assert (integration.mapping, integration.mapping_source) == (default_mapping(), "default")
    [integration] = from_env
    spec = integration.spec
    assert (spec.identifier, spec.type) == ("ado", "azure-devops")
    assert spec.config.organization_urls() == ["https://dev.azure.com/contoso"]
    assert spec.config.isProjectsLimited is False
    assert spec.config.excludedTags == ["archived"]
    assert spec.config.webhookAuthUsername == "port"
    assert (spec.eventListener.type, spec.scheduledResyncInterval) == ("ONCE", 90)
    assert (spec.initializePortResources, spec.sendRawDataExamples) == (False, False)


def test_the_environment_overrides_kiosk_yaml_key_by_key(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, HELM_STYLE_YAML))
    env = {**SECRETS_ONLY, "OCEAN__INTEGRATION__IDENTIFIER": "ado", "OCEAN__SCHEDULED_RESYNC_INTERVAL": "15"}
    assert resolve_integrations(config, env=SECRETS_ONLY, base_dir=tmp_path)[0].spec.scheduledResyncInterval == 90
    [integration] = resolve_integrations(config, env=env, base_dir=tmp_path)
    assert integration.spec.scheduledResyncInterval == 15
    assert integration.spec.eventListener.type == "ONCE"  # from kiosk.yaml: the environment does not set it
    assert integration.spec.config.excludedTags == ["archived"]


def test_the_environment_adds_an_integration_kiosk_yaml_does_not_have(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, HELM_STYLE_YAML))
    env = {
        **SECRETS_ONLY,
        "OCEAN__INTEGRATION__CONFIG__ORGANIZATION_URL": "https://dev.azure.com/fabrikam",
        "OCEAN__INTEGRATION__CONFIG__PERSONAL_ACCESS_TOKEN": PAT,
    }
    integrations = resolve_integrations(config, env=env, base_dir=tmp_path)
    assert [i.identifier for i in integrations] == ["ado", "my-azure-devops-integration"]
    assert integrations[1].spec.config.organization_urls() == ["https://dev.azure.com/fabrikam"]


def test_an_environment_value_ocean_would_refuse_is_an_error_naming_the_variable(tmp_path: Path) -> None:
    env = {**HELM_ENV, "OCEAN__SCHEDULED_RESYNC_INTERVAL": "hourly"}
    with pytest.raises(ConfigError) as info:
        resolve_integrations(KioskConfig(), env=env, base_dir=tmp_path)
    assert info.value.message.startswith(
        "environment variable OCEAN__SCHEDULED_RESYNC_INTERVAL: integration 'ado': scheduledResyncInterval: "
    )
    env = {"OCEAN__INTEGRATION__CONFIG__ORGANIZATION_URL": "https://dev.azure.com/c"}
    with pytest.raises(ConfigError) as info:
        resolve_integrations(KioskConfig(), env=env, base_dir=tmp_path)
    assert "config.personalAccessToken: field required" in info.value.message


def test_mappings_inline_in_a_file_or_the_default(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "ado.yaml").write_text(
        "resources:\n  - kind: project\n    selector: {query: 'true'}\n"
        "    port: {entity: {mappings: {identifier: .id, blueprint: '\"p\"'}}}\n"
    )
    path = write_config(
        tmp_path,
        integration_yaml(extra="    port-app-config: mappings/ado.yaml\n")
        + """  - identifier: inline
    type: azure-devops
    config: {organizationUrl: https://dev.azure.com/c, personalAccessToken: {env: ADO_PAT}}
    mapping:
      entityDeletionThreshold: 0.5
      resources:
        - kind: team
          selector: {query: 'true', includeMembers: true}
          port: {entity: {mappings: {identifier: .id, blueprint: '"team"'}}}
  - identifier: defaulted
    type: azure-devops
    config: {organizationUrl: https://dev.azure.com/d, personalAccessToken: {env: ADO_PAT}}
""",
    )
    config = load_config(path)
    from_file = config.integration_mapping("ado")
    assert from_file.source == str(tmp_path / "mappings" / "ado.yaml")
    assert from_file.config.kinds() == ["project"]
    inline = config.integration_mapping("inline")
    assert inline.source == f"{path}:11"
    assert inline.config.entityDeletionThreshold == 0.5
    assert inline.config.resources[0].selector_value("includeMembers") is True
    assert config.integration_mapping("defaulted").source == "default"
    ready = resolve_integrations(config, env={"ADO_PAT": PAT}, base_dir=tmp_path)
    assert [i.mapping.kinds() for i in ready] == [["project"], ["team"], default_mapping().kinds()]


def test_an_unknown_kind_inline_names_kiosk_yaml_line_and_field(tmp_path: Path) -> None:
    exc = config_error(
        tmp_path,
        integration_yaml(
            extra="""    port-app-config:
      resources:
        - kind: project
          selector: {query: 'true'}
          port: {entity: {mappings: {identifier: .id, blueprint: '"p"'}}}
        - kind: repo
          selector: {query: 'true'}
          port: {entity: {mappings: {identifier: .id, blueprint: '"r"'}}}
"""
        ),
    )
    assert exc.message.startswith(
        f"{tmp_path / 'kiosk.yaml'}:12: integrations[0].port-app-config.resources[1].kind: unknown kind 'repo' "
        "(known kinds: project, repository, "
    )


def test_problems_in_a_mapping_file_name_that_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "ado-mapping.yaml").write_text(
        """resources:
  - kind: repository
    selector:
      query: 'true'
      includedFile: [README.md]
    port:
      entity:
        mappings:
          identifier: .id |
          blueprint: '"r"'
"""
    )
    exc = config_error(tmp_path, integration_yaml(extra="    mapping: ado-mapping.yaml\n"))
    mapping_file = tmp_path / "ado-mapping.yaml"
    assert exc.message == (
        f"{mapping_file}:5: resources[0].selector.includedFile: unknown selector field 'includedFile' for kind "
        "'repository' (known: query, includedFiles) (and 1 more error)"
    )
    assert exc.details[1]["line"] == 9
    assert exc.details[1]["field"] == "resources[0].port.entity.mappings.identifier"
    assert "'.id |' is not a valid jq program: jq: error: syntax error" in exc.details[1]["message"]


def test_a_missing_mapping_file_names_where_kiosk_yaml_points_at_it(tmp_path: Path) -> None:
    exc = config_error(tmp_path, integration_yaml(extra="    mapping: nowhere.yaml\n"))
    assert exc.message == (
        f"{tmp_path / 'kiosk.yaml'}:7: integrations[0].mapping: mapping file {tmp_path / 'nowhere.yaml'}: "
        "config file not found"
    )


def test_a_broken_field_program_loads_with_a_warning_naming_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = integration_yaml(
        extra="""    mapping:
      resources:
        - kind: project
          selector: {query: 'true'}
          port:
            entity:
              mappings:
                identifier: .id
                blueprint: '"p"'
                properties: {description: ".d //"}
"""
    )
    with caplog.at_level(logging.WARNING, logger="kiosk.config.integrations"):
        config = load_config(write_config(tmp_path, text))
    [warning] = config.integration_mapping("ado").warnings
    assert warning.startswith(
        f"{tmp_path / 'kiosk.yaml'}:16: integrations[0].mapping.resources[0].port.entity.mappings.properties."
        "description: "
    )
    assert warning.endswith("this field maps to null")
    assert warning in caplog.text


@pytest.mark.parametrize(
    ("config", "line", "field", "message"),
    [
        (
            "organizationUrl: https://dev.azure.com/contoso",
            4,
            "integrations[0].config.personalAccessToken",
            "field required",
        ),
        (
            f"organizationUrl: https://dev.azure.com/contoso\n      personalAccessToken: {PAT}",
            6,
            "integrations[0].config.personalAccessToken",
            "secrets must be references ({env: NAME} or {file: PATH}), not literal values",
        ),
        (
            "organizationUrl: dev.azure.com/contoso\n      personalAccessToken: {env: ADO_PAT}",
            5,
            "integrations[0].config.organizationUrl",
            "'dev.azure.com/contoso' is not an organization URL: expected http(s)://host[/path], "
            "e.g. https://dev.azure.com/contoso",
        ),
        (
            "organizationUrl: https://dev.azure.com/a\n      organizationUrls: [https://dev.azure.com/b]\n"
            "      personalAccessToken: {env: ADO_PAT}",
            4,
            "integrations[0].config",
            "give organizationUrl or organizationUrls, not both",
        ),
        (
            "personalAccessToken: {env: ADO_PAT}",
            4,
            "integrations[0].config",
            "give organizationUrl (or organizationUrls, a non-empty list)",
        ),
        (
            "organizationUrl: https://dev.azure.com/a\n      personalAccessToken: {env: ADO_PAT}\n"
            "      accessToken: {env: ADO_PAT}",
            7,
            "integrations[0].config.accessToken",
            "unknown key 'accessToken'",
        ),
    ],
)
def test_settings_errors_name_file_line_and_field(
    tmp_path: Path, config: str, line: int, field: str, message: str
) -> None:
    exc = config_error(tmp_path, integration_yaml(config))
    assert exc.message == f"{tmp_path / 'kiosk.yaml'}:{line}: {field}: {message}"


def test_listener_type_and_interval_are_checked(tmp_path: Path) -> None:
    exc = config_error(tmp_path, integration_yaml(extra="    eventListener: {type: KAFKA}\n"))
    assert exc.message == (
        f"{tmp_path / 'kiosk.yaml'}:7: integrations[0].eventListener.type: "
        "input should be 'POLLING', 'ONCE' or 'WEBHOOKS_ONLY'"
    )
    exc = config_error(tmp_path, integration_yaml(extra="    scheduledResyncInterval: 0\n"))
    assert exc.message.endswith("integrations[0].scheduledResyncInterval: input should be greater than or equal to 1")


def test_identifiers_are_unique(tmp_path: Path) -> None:
    one = integration_yaml()
    exc = config_error(tmp_path, one + one.split("integrations:\n", 1)[1])
    assert exc.message == (
        f"{tmp_path / 'kiosk.yaml'}:7: integrations[1].identifier: duplicate integration 'ado' (also integrations[0])"
    )


def test_a_mapping_is_given_once(tmp_path: Path) -> None:
    exc = config_error(tmp_path, integration_yaml(extra="    mapping: a.yaml\n    port-app-config: b.yaml\n"))
    assert exc.message == f"{tmp_path / 'kiosk.yaml'}:2: integrations[0]: give port-app-config or mapping, not both"


def test_secrets_never_appear_in_reprs_or_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        config = load_config(write_config(tmp_path, HELM_STYLE_YAML))
        integrations = resolve_integrations(config, env=SECRETS_ONLY, base_dir=tmp_path)
    shown = repr(integrations) + str(integrations) + repr(config) + caplog.text
    assert PAT not in shown and HOOK_SECRET not in shown
    # A literal secret in the file is refused without being echoed.
    exc = config_error(
        tmp_path,
        integration_yaml(f"organizationUrl: https://dev.azure.com/a\n      personalAccessToken: {PAT}"),
    )
    assert PAT not in exc.message and PAT not in str(exc.details)
    # A PAT reference that does not resolve names the reference, not a value.
    with pytest.raises(ConfigError) as info:
        resolve_integrations(config, env={}, base_dir=tmp_path)
    assert info.value.message == "secret {env: ADO_PAT}: environment variable ADO_PAT is not set"
    # A bad value beside a secret in the environment: the error names variables, never values.
    with pytest.raises(ConfigError) as info:
        resolve_integrations(KioskConfig(), env={**HELM_ENV, "OCEAN__EVENT_LISTENER__TYPE": "KAFKA"}, base_dir=tmp_path)
    assert "OCEAN__EVENT_LISTENER__TYPE" in info.value.message
    assert PAT not in info.value.message and HOOK_SECRET not in info.value.message


def test_a_mapping_file_with_a_yaml_error_names_both_files(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("resources:\n  - kind: [project\n")
    exc = config_error(tmp_path, integration_yaml(extra="    mapping: m.yaml\n"))
    assert exc.message.startswith(
        f"{tmp_path / 'kiosk.yaml'}:7: integrations[0].mapping: mapping file {tmp_path / 'm.yaml'}:3: YAML syntax error"
    )


def test_a_config_built_in_code_checks_its_inline_mappings(tmp_path: Path) -> None:
    def config_with(mapping: object) -> KioskConfig:
        item: dict[str, object] = {
            "identifier": "ado",
            "type": "azure-devops",
            "config": {"organizationUrl": "https://dev.azure.com/c", "personalAccessToken": {"env": "ADO_PAT"}},
        }
        if mapping is not None:
            item["mapping"] = mapping
        return KioskConfig.model_validate({"integrations": [item]})

    assert config_with(None).integration_mapping("ado").source == "default"
    inline = config_with(
        {
            "resources": [
                {
                    "kind": "team",
                    "selector": {"query": "true"},
                    "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": '"team"'}}},
                }
            ]
        }
    )
    assert inline.integration_mapping("ado").config.kinds() == ["team"]
    with pytest.raises(ConfigError, match=r"integration 'ado': resources\[0\]\.kind: unknown kind 'teams'"):
        config_with({"resources": [{"kind": "teams"}]}).integration_mapping("ado")
    with pytest.raises(ConfigError, match=r"mapping file m\.yaml is read by load_config"):
        config_with("m.yaml").integration_mapping("ado")
    with pytest.raises(KeyError):
        config_with(None).integration_mapping("other")
