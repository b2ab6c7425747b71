"""Azure DevOps' error replies, as the emulator sends them.

Azure answers REST errors with one JSON shape
``{"$id":"1","innerException":null,"message":…,"typeName":…,"typeKey":…,"errorCode":0,"eventId":3000}``
and clients (kiosk's delivery among them) parse it, so the emulator uses the same shape and the same
status codes the reference file records. Where Azure's ``typeKey`` is undocumented the emulator
uses a descriptive one and says so in the message's docstring below; clients should key on the
status code, as they must with Azure too.

    status  typeKey                                  when
    400     VssApiVersionMissingException            the trigger without an ``api-version`` query parameter
    400     VssVersionNotSpecifiedException          a write (POST, PUT, PATCH, DELETE) with no api-version in the
                                                     query or the ``Accept`` header (reads are served at 7.1)
    400     VssInvalidApiVersionException            an api-version that is not {Major}.{Minor}[-preview[.N]]
    400     VssVersionOutOfRangeException            an api-version that is not 6.x or 7.x
    400     InvalidPayloadException (emulator's)     a body that is not JSON (the webhook's: not an object),
                                                     or deeper than 64 levels
    401     UnauthorizedRequestException             no PAT (TF400813; Azure's WWW-Authenticate and
                                                     X-TFS-FedAuthRedirect headers); a PAT that opens nothing
                                                     here gets TF400813 as plain text and
                                                     X-VSS-AuthenticateError: InvalidToken
    403     CrossOriginRequestException (emulator's) Origin not the emulator's own, Sec-Fetch-Site: cross-site
    404     OrganizationNotFoundException (emulator) the org is not served by this emulator
    404     ProjectDoesNotExistWithNameException     unknown project (TF200016)
    404     GitRepositoryNotFoundException (TF401019), GitItemNotFoundException (TF401174),
            GitUnresolvableToCommitException (TF401175), GitPullRequestNotFoundException (TF401180),
            TeamNotFoundException, DefinitionNotFoundException, PolicyConfigurationNotFoundException
    404     PipelineNotFoundException / BuildNotFoundException / RunNotFoundException
    405     MethodNotAllowed (emulator's)            e.g. GET on the trigger URL
    413     RequestTooLargeException (emulator's)    body over the emulator's maxBodyBytes
    415     UnsupportedMediaTypeException (emulator) a body that is not ``application/json``
    500     WebHookNotFoundException (emulator's)    no connection with that WebHook Name
    500     RequiredHeaderSignatureNotFoundException the connection has a secret, the header is missing or empty
    500     WebHookChecksumMismatchException (emulator's)  wrong checksum (Azure: undocumented, rejects)
    400     PipelineValidationException              a Runs API call whose YAML does not expand
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["AzureError", "azure_error_body", "repository_not_found"]

_TYPE_NAMESPACE = "Microsoft.TeamFoundation.DistributedTask.WebApi"


def azure_error_body(message: str, type_key: str, type_name: str | None = None) -> dict[str, Any]:
    """Azure's error JSON (key order as Azure writes it)."""
    return {
        "$id": "1",
        "innerException": None,
        "message": message,
        "typeName": type_name or f"{_TYPE_NAMESPACE}.{type_key}, {_TYPE_NAMESPACE}",
        "typeKey": type_key,
        "errorCode": 0,
        "eventId": 3000,
    }


class AzureError(Exception):
    """An error the emulator answers with Azure's status code and body."""

    def __init__(self, status: int, type_key: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.type_key = type_key
        self.message = message

    def body(self) -> dict[str, Any]:
        return azure_error_body(self.message, self.type_key)


#: The type keys of the errors the emulator's HTTP server answers itself, before the app (Azure's
#: front end answers these with an HTML page; the emulator keeps to the JSON shape clients parse).
_SERVER_TYPE_KEYS = {400: "BadHttpRequestException", 408: "RequestTimeoutException"}


def repository_not_found(id_or_name: str) -> AzureError:
    """TF401019, Azure's one answer for a repository that is missing, not the caller's, or disabled:
    the lookups and the org's changes both raise it, so all say the same."""
    return AzureError(
        404,
        "GitRepositoryNotFoundException",
        f"TF401019: The Git repository with name or identifier {id_or_name} does not exist or you do "
        "not have permissions for the operation you are attempting.",
    )


def server_error_body(status: int, code: str, message: str) -> bytes:
    """The emulator's renderer for :func:`kiosk.web.server.server_config` (``error_body=``): a
    request the server cannot parse or that missed a deadline, in Azure's error JSON."""
    return orjson.dumps(azure_error_body(message, _SERVER_TYPE_KEYS.get(status, "HttpException")))
