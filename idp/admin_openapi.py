"""The OpenAPI 3.1 description of the contract admin API (``idp.endpoints.admin_api``).

Hand-written, next to nothing else: tests/test_admin_api.py runs schemathesis against
what is served, so a drift between this and the endpoints shows up there.
"""

from __future__ import annotations

from typing import Any

_JSON = "application/json"
_PROBLEM = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {_JSON: {"schema": schema}}
    return out


def _problem(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {_JSON: {"schema": schema}}}


#: Every authenticated operation can answer these.
_COMMON = {"401": _problem("Unauthorized"), "403": _problem("Forbidden")}
_USER_ID = {"name": "user_id", "in": "path", "required": True,
            "schema": {"type": "string", "maxLength": 64}}
_LINE_ID = {"name": "line_id", "in": "path", "required": True,
            "schema": {"type": "string", "maxLength": 40}}


def _op(summary: str, responses: dict[str, Any], *, params: list | None = None,
        body: dict[str, Any] | None = None, headers: list | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**responses, **_COMMON}}
    if params or headers:
        op["parameters"] = [*(params or []), *(headers or [])]
    if body is not None:
        op["requestBody"] = body
    return op


def _user_action(summary: str, schema: str = "User", *, conflict: bool = True) -> dict:
    responses = {"200": _ok("Done.", _ref(schema)), "404": _problem("NotFound")}
    if conflict:
        responses["409"] = _problem("Conflict")
    return _op(summary, responses, params=[_USER_ID])


def document(issuer: str) -> dict[str, Any]:
    """The document served at ``/admin/api/v1/openapi.json``."""
    schemas = {
        "User": {
            "type": "object",
            "required": ["id", "email", "name", "role", "status", "login_method", "lang",
                         "created_at", "updated_at"],
            "properties": {
                "id": {"type": "string"},
                "email": {"type": "string"},
                "name": {"type": "string"},
                "role": {"enum": ["owner", "admin", "user"]},
                "status": {"enum": ["invited", "active", "disabled"]},
                "login_method": {"type": "string"},
                "lang": {"enum": ["ja", "en"]},
                "created_at": {"type": "integer", "description": "Unix time"},
                "updated_at": {"type": "integer", "description": "Unix time"},
            },
        },
        "UserDetail": {
            "allOf": [_ref("User"), {
                "type": "object",
                "required": ["two_step_factors"],
                "properties": {"two_step_factors": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"type": {"type": "string"},
                                   "enrolled_at": {"type": "integer"},
                                   "masked_phone": {"type": ["string", "null"]}}}}},
            }],
        },
        "UserPage": {
            "type": "object",
            "required": ["total", "page", "per_page", "items"],
            "properties": {"total": {"type": "integer"}, "page": {"type": "integer"},
                           "per_page": {"type": "integer"},
                           "items": {"type": "array", "items": _ref("User")}},
        },
        "MailResult": {
            "type": "object",
            "required": ["user", "mail"],
            "properties": {
                "user": _ref("UserDetail"),
                "mail": {"enum": ["sent", "delayed", "none"],
                         "description": "sent now; delayed: queued, retried by the "
                                        "outbox; none: no mail (nothing to tell, or an "
                                        "idempotent replay)"},
            },
        },
        "Invitation": {
            "type": "object",
            "required": ["name", "email"],
            "properties": {
                "name": {"type": "string", "maxLength": 200},
                "email": {"type": "string", "format": "email", "maxLength": 320},
                "role": {"enum": ["admin", "user"], "default": "user"},
                "lang": {"enum": ["ja", "en"], "default": "ja",
                         "description": "Language of the invitation mail"},
            },
        },
        "RoleChange": {
            "type": "object", "required": ["role"],
            "properties": {"role": {"enum": ["admin", "user"]}},
        },
        "Line": {
            "type": "object", "required": ["line_id", "created_at", "created_by"],
            "properties": {"line_id": {"type": "string"}, "created_at": {"type": "integer"},
                           "created_by": {"type": "string"}},
        },
        "LineList": {
            "type": "object", "required": ["access_route", "items"],
            "properties": {"access_route": {"type": "string"},
                           "items": {"type": "array", "items": _ref("Line")}},
        },
        "NewLine": {
            "type": "object", "required": ["line_id"],
            "properties": {"line_id": {
                "type": "string", "maxLength": 40,
                "description": "CAF + 10 or COP + 8 alphanumerics (NTT line ID)"}},
        },
        "EmailForm": {
            "type": "object", "required": ["email"],
            "properties": {"email": {
                "type": "string", "maxLength": 320,
                "description": "A new address sends the email-change link to it; the "
                               "user's current address sends them the login-method-"
                               "change link"}},
        },
        "LinkResult": {
            "type": "object", "required": ["user", "mail", "link", "to"],
            "properties": {
                "user": _ref("User"),
                "mail": {"enum": ["sent", "delayed", "none"],
                         "description": "none: an idempotent replay, nothing sent"},
                "link": {"enum": ["email_change", "login_method_change"]},
                "to": {"type": "string", "description": "The address the link went to"},
            },
        },
        "SessionsRevoked": {
            "type": "object", "required": ["user"], "properties": {"user": _ref("User")},
        },
        "BrowsersForgotten": {
            "type": "object", "required": ["user", "forgotten"],
            "properties": {"user": _ref("User"),
                           "forgotten": {"type": "integer", "minimum": 0,
                                         "description": "Live remembered browsers ended"}},
        },
        "AuditEvent": {
            "type": "object",
            "required": ["id", "at", "at_jst", "actor", "actor_email", "action", "target",
                         "target_email", "ip", "details"],
            "properties": {
                "id": {"type": "integer"},
                "at": {"type": "integer", "description": "Unix time"},
                "at_jst": {"type": "string", "description": "YYYY-MM-DD HH:MM:SS, Japan"},
                "actor": {"type": "string",
                          "description": "user:<id>, client:<client_id>, operator, system"},
                "actor_email": {"type": ["string", "null"],
                                "description": "When the actor is a user of this contract"},
                "action": {"type": "string"},
                "target": {"type": "string"},
                "target_email": {"type": ["string", "null"]},
                "ip": {"type": "string"},
                "details": {"type": "object"},
            },
        },
        "AuditPage": {
            "type": "object",
            "required": ["total", "page", "per_page", "items"],
            "properties": {"total": {"type": "integer"}, "page": {"type": "integer"},
                           "per_page": {"type": "integer"},
                           "items": {"type": "array", "items": _ref("AuditEvent")}},
        },
        "Contract": {
            "type": "object",
            "required": ["id", "name", "plan", "state", "trial_ends_at", "access_route",
                         "two_step", "two_step_keep_on_reset", "connection_id", "ad_type"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "plan": {"enum": ["basic", "trial"]},
                "state": {"enum": ["active", "trial_ended", "expired", "cancelled"]},
                "trial_ends_at": {"type": ["integer", "null"], "description": "Unix time"},
                "access_route": {"enum": ["line+internet", "line-only"]},
                "two_step": {
                    "type": "object", "required": ["enabled", "in_force"],
                    "properties": {
                        "enabled": {"type": "boolean",
                                    "description": "The owner's setting"},
                        "in_force": {"type": "boolean",
                                     "description": "false under line-only, whatever "
                                                    "the setting"}}},
                "two_step_keep_on_reset": {"type": "boolean"},
                "connection_id": {"type": ["string", "null"],
                                  "description": "The AD connection ID, once AD is set up"},
                "ad_type": {"enum": ["adfs", "ldap", None],
                            "description": "Only the type: no AD setting value (least "
                                           "of all the bind password) is ever returned"},
            },
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string", "format": "uri-reference"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "code": {"type": "string"},
                "errors": {"type": "object", "additionalProperties": {"type": "string"},
                           "description": "field -> message, for validation problems"},
            },
        },
    }

    def problem_response(description: str) -> dict[str, Any]:
        return {"description": description,
                "content": {_PROBLEM: {"schema": _ref("Problem")}}}

    responses = {
        "BadRequest": problem_response("Invalid input; ``errors`` names the fields."),
        "Unauthorized": {**problem_response("No valid bearer token nor session."),
                         "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
        "Forbidden": problem_response("Not an owner/admin, token without scope admin, "
                                      "or (session) missing X-CSRF-Token."),
        "NotFound": problem_response("No such user or line in the caller's contract."),
        "Conflict": problem_response("Not allowed in the current state (the owner is "
                                     "fixed, not yourself, already disabled, ...)."),
    }
    idempotency = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                   "description": "A retry with the same key answers 200 with the same "
                                  "user and sends nothing"}
    audit_filters = [
        {"name": "action", "in": "query", "schema": {"type": "string", "maxLength": 80},
         "description": "Start of the action, e.g. user. or mfa.reset"},
        {"name": "user", "in": "query", "schema": {"type": "string", "maxLength": 200},
         "description": "Events about this user: their id, or part of their email"},
        {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"},
         "description": "First day, YYYY-MM-DD, Japan time"},
        {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"},
         "description": "Last day (included), YYYY-MM-DD, Japan time"},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                   "default": 1}},
        {"name": "per_page", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}},
    ]
    paging = [
        {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 200},
         "description": "Part of the email or name"},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                   "default": 1}},
        {"name": "per_page", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
    ]
    paths = {
        "/users": {
            "get": _op("Users of the contract", {"200": _ok("A page.", _ref("UserPage")),
                                                 "400": _problem("BadRequest")},
                       params=paging),
            "post": _op("Invite a user",
                        {"201": _ok("Invited.", _ref("MailResult")),
                         "200": _ok("Already invited: resent (or an idempotent replay).",
                                    _ref("MailResult")),
                         "400": _problem("BadRequest"), "409": _problem("Conflict"),
                         "422": problem_response("Idempotency-Key reused with another "
                                                 "body")},
                        body=_body(_ref("Invitation")), headers=[idempotency]),
        },
        "/users/{user_id}": {
            "get": _op("A user", {"200": _ok("The user.", _ref("UserDetail")),
                                  "404": _problem("NotFound")}, params=[_USER_ID]),
            "patch": _op("Change a user's role",
                         {"200": _ok("Changed.", _ref("User")), "400": _problem("BadRequest"),
                          "404": _problem("NotFound"), "409": _problem("Conflict")},
                         params=[_USER_ID], body=_body(_ref("RoleChange"))),
        },
        "/users/{user_id}/resend": {"post": _user_action("Resend the invitation",
                                                         "MailResult")},
        "/users/{user_id}/disable": {"post": _user_action("Disable a user")},
        "/users/{user_id}/enable": {"post": _user_action("Enable a user")},
        "/users/{user_id}/two-step/reset": {
            "post": _user_action("Reset the user's 2-step enrolment", "MailResult")},
        "/users/{user_id}/email": {
            "post": _op("Send the email-change or the login-method-change link",
                        {"200": _ok("Sent (or an idempotent replay).", _ref("LinkResult")),
                         "400": _problem("BadRequest"), "404": _problem("NotFound"),
                         "409": problem_response(
                             "The owner (their own settings menu), a user not active, "
                             "the address taken, or the other change under way"),
                         "422": problem_response("Idempotency-Key reused with another "
                                                 "request")},
                        params=[_USER_ID], body=_body(_ref("EmailForm")),
                        headers=[idempotency]),
        },
        "/users/{user_id}/sessions/revoke": {
            "post": _user_action("Sign the user out everywhere (sessions and tokens); "
                                 "never the owner's", "SessionsRevoked")},
        "/users/{user_id}/browsers/forget": {
            "post": _user_action("Forget the user's remembered browsers; never the "
                                 "owner's", "BrowsersForgotten")},
        "/audit": {
            "get": _op("The contract's audit log, newest first",
                       {"200": _ok("A page.", _ref("AuditPage")),
                        "400": _problem("BadRequest")}, params=audit_filters),
        },
        "/contract": {
            "get": {**_op("The contract's settings (read-only)",
                          {"200": _ok("The contract.", _ref("Contract"))}),
                    "description": "Read-only by design: the contract's settings (access "
                                   "route, 2-step verification, Active Directory, details, "
                                   "plan) are changed only by the owner, in the settings "
                                   "menu (SPEC §2); this API has no operation for them."},
        },
        "/lines": {
            "get": _op("Line IDs of the contract", {"200": _ok("Lines.", _ref("LineList"))}),
            "post": _op("Register a line ID",
                        {"201": _ok("Registered.", _ref("Line")),
                         "400": _problem("BadRequest"), "409": _problem("Conflict")},
                        body=_body(_ref("NewLine"))),
        },
        "/lines/{line_id}": {
            "delete": _op("Remove a line ID",
                          {"204": {"description": "Removed."}, "404": _problem("NotFound"),
                           "409": _problem("Conflict")},
                          params=[_LINE_ID, {
                              "name": "confirm", "in": "query",
                              "schema": {"enum": ["true"]},
                              "description": "Required to remove the last line of a "
                                             "line-only contract"}]),
        },
        "/csrf-token": {
            "get": _op("CSRF token for session callers",
                       {"200": _ok("The token for X-CSRF-Token.", {
                           "type": "object", "required": ["csrf_token"],
                           "properties": {"csrf_token": {"type": "string"}}})}),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Contract admin API", "version": "1.0.0",
                 "description": "Owners and admins manage their contract's users and line "
                                "IDs, and read its audit log and settings. Every call is "
                                "scoped to the caller's contract. The contract's settings "
                                "are read-only here: only the owner changes them, in the "
                                "settings menu."},
        "servers": [{"url": issuer.rstrip("/") + "/admin/api/v1"}],
        "security": [{"adminToken": ["admin"]}, {"adminSession": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "adminToken": {
                    "type": "oauth2",
                    "description": "client_credentials of an admin client of one contract "
                                   "(`idp client create --admin-contract`)",
                    "flows": {"clientCredentials": {
                        "tokenUrl": issuer.rstrip("/") + "/token",
                        "scopes": {"admin": "Manage the client's contract"}}},
                },
                "adminSession": {
                    "type": "apiKey", "in": "cookie", "name": "idp_session",
                    "description": "An owner's or admin's signed-in browser session; "
                                   "unsafe methods also send X-CSRF-Token "
                                   "(GET /csrf-token)",
                },
            },
        },
    }
