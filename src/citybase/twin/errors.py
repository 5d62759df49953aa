"""The NGSI-LD error types (ETSI GS CIM 009 §5.5.2): what the twin's API answers, as ``application/json``
problem details with the standard's ``type`` URIs, instead of citybase's problem+json."""

from __future__ import annotations

from typing import Any

ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


class NgsiError(Exception):
    """An error a client of the NGSI-LD API can cause or be told about; never a 500 for what it sends."""

    status = 400
    kind = "BadRequestData"
    title = "The request includes input data which does not meet the requirements of the operation"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def type(self) -> str:
        return ERRORS + self.kind

    def body(self) -> dict[str, Any]:
        return {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail, **self.extra}


class BadRequestData(NgsiError):
    pass


class InvalidRequest(NgsiError):
    kind = "InvalidRequest"
    title = "The request associated to the operation is syntactically invalid or includes wrong content"


class ResourceNotFound(NgsiError):
    status = 404
    kind = "ResourceNotFound"
    title = "The referred element does not exist"


class NonexistentTenant(NgsiError):
    status = 404
    kind = "NonexistentTenant"
    title = "The addressed tenant does not exist"


class AlreadyExists(NgsiError):
    status = 409
    kind = "AlreadyExists"
    title = "The referred element already exists"


class OperationNotSupported(NgsiError):
    status = 422
    kind = "OperationNotSupported"
    title = "The operation is not supported"


class TooManyResults(NgsiError):
    status = 403
    kind = "TooManyResults"
    title = "The query associated to the operation is producing so many results that can exhaust client or server resources"


class LdContextNotAvailable(NgsiError):
    status = 504
    kind = "LdContextNotAvailable"
    title = "A remote JSON-LD @context referenced in a request cannot be retrieved"


class NotAcceptable(NgsiError):
    status = 406
    kind = "NotAcceptable"  # HTTP's own; NGSI-LD names no type for it
    title = "None of the media types the client accepts can be produced"


class UnsupportedMediaType(NgsiError):
    status = 415
    kind = "UnsupportedMediaType"
    title = "The request body is not in a media type the operation accepts"


class Unauthorized(NgsiError):
    status = 401
    kind = "Unauthorized"
    title = "The request needs a valid bearer token"


class Forbidden(NgsiError):
    status = 403
    kind = "Forbidden"
    title = "The caller's roles may not do this"


class Unavailable(NgsiError):
    status = 503
    kind = "InternalError"
    title = "The database or the bus is unavailable for a moment"


class InternalError(NgsiError):
    status = 500
    kind = "InternalError"
    title = "There has been an error during the operation execution"
