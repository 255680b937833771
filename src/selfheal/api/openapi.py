"""What the routes read, described for OpenAPI: request bodies, headers, query parameters.

The routes read their bodies and query strings themselves (so a request is refused with
415, 413 or a 400 naming the field before anything is ingested), which FastAPI cannot see;
these fragments are passed to the routes as `openapi_extra`, so `/openapi.json` tells a
client, and a schema-driven fuzzer, what each route takes. They describe and never
validate: the receivers' parsers stay the only judges of a body.
"""

from __future__ import annotations

from typing import Any

_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_BINARY = {"schema": {"type": "string", "format": "binary"}}

# Alertmanager's webhook, version 4, as `receivers.alertmanager.parse_webhook` reads it.
_ALERT = {
    "type": "object",
    "required": ["status", "labels", "startsAt", "fingerprint"],
    "properties": {
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "labels": {**_LABELS, "required": ["alertname"]},
        "annotations": _LABELS,
        "startsAt": {"type": "string", "format": "date-time"},
        "endsAt": {"type": "string", "format": "date-time"},
        "generatorURL": {"type": "string"},
        "fingerprint": {"type": "string"},
    },
}
_WEBHOOK = {
    "type": "object",
    "required": ["version", "groupKey", "status", "receiver", "alerts"],
    "properties": {
        "version": {"type": "string", "enum": ["4"]},
        "groupKey": {"type": "string"},
        "truncatedAlerts": {"type": "integer", "minimum": 0},
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "receiver": {"type": "string"},
        "groupLabels": _LABELS,
        "commonLabels": _LABELS,
        "commonAnnotations": _LABELS,
        "externalURL": {"type": "string"},
        "alerts": {"type": "array", "items": _ALERT},
    },
}

ALERTS: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _WEBHOOK}}}
}

# A verdict's reason; `as`, if sent, must name the caller (the credential decides who).
VERDICT: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"reason": {"type": "string"}, "as": {"type": "string"}},
                }
            }
        },
    }
}

# An admin's reset of an open circuit breaker: which runbook, on which Deployment, and why.
BREAKER_RESET: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["runbook", "target"],
                    "properties": {
                        "runbook": {"type": "string", "minLength": 1},
                        "target": {"type": "string", "pattern": "^[^/]+/.+$"},
                        "reason": {"type": "string"},
                    },
                }
            }
        },
    }
}

# OTLP/HTTP metrics: an ExportMetricsServiceRequest, protobuf or its JSON mapping.
OTLP_METRICS: dict[str, Any] = {
    "parameters": [
        {
            "name": "Content-Encoding",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "enum": ["identity", "gzip", "deflate"]},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/x-protobuf": _BINARY,
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "resourceMetrics": {"type": "array", "items": {"type": "object"}}
                    },
                }
            },
        },
    },
}

# Prometheus remote-write 1.0: a snappy-compressed WriteRequest.
REMOTE_WRITE: dict[str, Any] = {
    "parameters": [
        {
            "name": "Content-Encoding",
            "in": "header",
            "required": True,
            "schema": {"type": "string", "enum": ["snappy"]},
        },
        {
            "name": "X-Prometheus-Remote-Write-Version",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "enum": ["0.1.0"]},
        },
    ],
    "requestBody": {"required": True, "content": {"application/x-protobuf": _BINARY}},
}

_LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000}


def incident_list(states: list[str]) -> dict[str, Any]:
    """The query of GET /api/v1/incidents: `state` (repeatable), `open`, `limit`."""
    return {
        "parameters": [
            {
                "name": "state",
                "in": "query",
                "required": False,
                "schema": {"type": "array", "items": {"type": "string", "enum": states}},
                "style": "form",
                "explode": True,
            },
            {"name": "open", "in": "query", "required": False, "schema": {"type": "boolean"}},
            {"name": "limit", "in": "query", "required": False, "schema": _LIMIT},
        ]
    }


AUDIT_PAGE: dict[str, Any] = {
    "parameters": [
        {
            "name": "after",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "maximum": 2**62},
        },
        {"name": "limit", "in": "query", "required": False, "schema": _LIMIT},
        {"name": "kind", "in": "query", "required": False, "schema": {"type": "string"}},
    ]
}
