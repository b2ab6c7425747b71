"""Publishers, event types and consumers through Microsoft's ServiceHooksClient (v7_1)."""

from __future__ import annotations

import pytest
from azure.devops.exceptions import AzureDevOpsServiceError
from tests.emulator.conftest import LiveEmulator
from tests.emulator.hooks.conftest import hooks_client

from kiosk.emulator.hooks.catalogue import EVENT_TYPES

REQUIRED = {
    "tfs": {
        "git.push",
        "git.pullrequest.created",
        "git.pullrequest.updated",
        "git.pullrequest.merged",
        "ms.vss-code.git-pullrequest-comment-event",
        "git.repo.created",
        "git.repo.forked",
        "git.repo.renamed",
        "git.repo.deleted",
        "git.repo.undeleted",
        "git.repo.statuschanged",
        "workitem.created",
        "workitem.updated",
        "workitem.deleted",
        "workitem.restored",
        "workitem.commented",
        "build.complete",
    },
    "pipelines": {
        "ms.vss-pipelines.run-state-changed-event",
        "ms.vss-pipelines.stage-state-changed-event",
        "ms.vss-pipelines.job-state-changed-event",
    },
    "rm": {
        "ms.vss-release.release-created-event",
        "ms.vss-release.release-abandoned-event",
        "ms.vss-release.deployment-started-event",
        "ms.vss-release.deployment-completed-event",
    },
}


def test_publishers_and_their_event_types(hooked: LiveEmulator) -> None:
    client = hooks_client(hooked)
    publishers = {p.id: p for p in client.list_publishers()}
    assert set(publishers) == {"tfs", "pipelines", "rm"}
    for publisher_id, events in REQUIRED.items():
        publisher = client.get_publisher(publisher_id)
        assert publisher.name and publisher.url.endswith(f"/_apis/hooks/publishers/{publisher_id}")
        assert events <= {e.id for e in publisher.supported_events}
        listed = client.list_event_types(publisher_id)
        assert events <= {e.id for e in listed}
        assert all(e.publisher_id == publisher_id for e in listed)
    push = client.get_event_type("tfs", "git.push")
    assert push.supported_resource_versions == ["1.0"]
    assert [i.id for i in push.input_descriptors] == ["projectId", "repository", "branch", "pushedBy"]
    updated = client.get_event_type("tfs", "workitem.updated")
    assert "changedFields" in [i.id for i in updated.input_descriptors]
    run = client.get_event_type("pipelines", "ms.vss-pipelines.run-state-changed-event")
    assert run.supported_resource_versions == ["5.1-preview.1"]
    assert {"pipelineId", "runStateId", "runResultId"} <= {i.id for i in run.input_descriptors}
    with pytest.raises(AzureDevOpsServiceError):
        client.get_event_type("pipelines", "git.push")  # tfs's, not pipelines'
    with pytest.raises(AzureDevOpsServiceError):
        client.get_publisher("nope")
    assert len(EVENT_TYPES) >= sum(len(e) for e in REQUIRED.values())


def test_the_web_hooks_consumer_and_its_action(hooked: LiveEmulator) -> None:
    client = hooks_client(hooked)
    (consumer,) = client.list_consumers()
    assert consumer.id == "webHooks" and consumer.name == "Web Hooks"
    assert [a.id for a in consumer.actions] == ["httpRequest"]
    assert client.get_consumer("webHooks", publisher_id="tfs").id == "webHooks"
    (action,) = client.list_consumer_actions("webHooks")
    assert action.id == "httpRequest" and action.consumer_id == "webHooks"
    assert "git.push" in action.supported_event_types
    inputs = {i.id: i for i in action.input_descriptors}
    assert inputs["basicAuthPassword"].is_confidential is True
    assert {"httpHeaders", "resourceDetailsToSend", "messagesToSend", "detailedMessagesToSend"} <= set(inputs)
    assert client.get_consumer_action("webHooks", "httpRequest").name
    with pytest.raises(AzureDevOpsServiceError):
        client.get_consumer("slack")
    with pytest.raises(AzureDevOpsServiceError):
        client.get_consumer_action("webHooks", "sendMessage")
