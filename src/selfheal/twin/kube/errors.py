"""Errors of the twin's API, answered as Kubernetes `Status` objects.

kubectl and the clients decide what to print (and whether to retry) from a Status's `code`,
`reason` and `details`, so these carry exactly the fields a real API server fills in. Every
handler module raises them; the routes turn them into responses.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from selfheal.twin.kube import validation

JsonObject = dict[str, Any]


class ApiError(Exception):
    """An error answered as a Kubernetes Status object."""

    def __init__(
        self, code: int, reason: str, message: str, *, details: JsonObject | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def response(self) -> JSONResponse:
        body: JsonObject = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return JSONResponse(body, status_code=self.code)


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    """404 for a named object: kubectl prints `pods "x" not found` from the message."""
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        404,
        "NotFound",
        f'{qualified} "{name}" not found',
        details={"name": name, "group": group, "kind": resource},
    )


def invalid(kind: str, name: str, group: str, causes: list[validation.Cause]) -> ApiError:
    """422 Invalid; `kind` is the Kind (`Deployment`), as kubectl prints it."""
    summary = ", ".join(f"{cause.field}: {cause.message}" for cause in causes)
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {summary}',
        details={
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [
                {"reason": c.reason, "message": c.message, "field": c.field} for c in causes
            ],
        },
    )


def no_such_path() -> ApiError:
    """404 for a path the server does not serve (not an object that is missing)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)
