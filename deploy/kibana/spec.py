"""The Kibana objects of logto-shipper, as a small readable spec.

Every field name comes from ``F``: renaming a field of the data contract is one change here,
then ``python deploy/kibana/generate.py`` rewrites ``logto-auth.ndjson``.
"""

from __future__ import annotations

DATA_VIEW_ID = "logto-audit"
PATTERN = "logto-audit-default-*"  # <prefix>-<namespace>-*; `setup --kibana-url` rewrites it
# The detections' alerts (mappings/alerts-template.json): <prefix>-alerts-<namespace>-*
ALERTS_VIEW_ID = "logto-shipper-alerts"
ALERTS_PATTERN = "logto-audit-alerts-default-*"
ALERT_COLUMNS = [
    "rule.name",
    "logto_shipper.alert.entity",
    "logto_shipper.alert.count",
    "related.ip",
    "message",
]

F = {
    "time": "@timestamp",
    "action": "event.action",
    "outcome": "event.outcome",
    "family": "logto.family",
    "user": "user.id",
    "app": "logto.application_id",
    "ip": "source.ip",
    "country": "source.geo.country_iso_code",
    "error_code": "error.code",
    "session": "logto.session_id",
}

COLUMNS = [F["action"], F["outcome"], F["user"], F["app"], F["ip"]]  # the console's table

FIELD_FORMATS = {
    F["outcome"]: {
        "id": "color",
        "params": {
            "fieldType": "string",
            "colors": [
                {
                    "range": "-Infinity:Infinity",
                    "regex": "^success$",
                    "text": "#FFFFFF",
                    "background": "#54B399",
                },
                {
                    "range": "-Infinity:Infinity",
                    "regex": "^failure$",
                    "text": "#FFFFFF",
                    "background": "#E7664C",
                },
            ],
        },
    },
    F["ip"]: {"id": "ip"},
}

SIGN_IN = f'{F["action"]} : "Interaction.SignIn.Submit"'
FAILED_SIGN_IN = f'{SIGN_IN} and {F["outcome"]} : "failure"'

# Panels: (id, title, chart, query, buckets). Buckets: ("time",) date histogram; ("split", field, size)
# terms split series; ("terms", field, size) the x-axis / slices / rows.
PANELS = [
    (
        "logto-signins-over-time",
        "Sign-ins over time by outcome",
        "histogram",
        SIGN_IN,
        [("time",), ("split", F["outcome"], 3)],
    ),
    (
        "logto-failed-signins-by-ip",
        "Failed sign-ins by source IP (top 10)",
        "table",
        FAILED_SIGN_IN,
        [("terms", F["ip"], 10)],
    ),
    (
        "logto-failed-signins-by-country",
        "Failed sign-ins by country",
        "pie",
        FAILED_SIGN_IN,
        [("terms", F["country"], 10)],
    ),
    ("logto-top-users", "Top users", "table", "", [("terms", F["user"], 10)]),
    ("logto-top-apps", "Top applications", "table", "", [("terms", F["app"], 10)]),
    (
        "logto-token-exchanges",
        "Token exchanges by grant type",
        "histogram",
        f"{F['action']} : ExchangeTokenBy.*",
        [("time",), ("split", F["action"], 10)],
    ),
    (
        "logto-error-codes",
        "Error codes over time",
        "histogram",
        f"{F['error_code']} : *",
        [("time",), ("split", F["error_code"], 10)],
    ),
]

# Saved searches: (id, title, description, query, time range or None)
SEARCHES = [
    (
        "logto-events",
        "Logto audit events",
        "All events with the console's columns; drill down with filters.",
        "",
        None,
    ),
    (
        "logto-user-activity",
        "Logto: one user's activity",
        "Replace USER_ID in the query with the user's id.",
        f'{F["user"]} : "USER_ID"',
        None,
    ),
    (
        "logto-ip-activity",
        "Logto: one IP's activity",
        "Replace 203.0.113.7 with the address (or a CIDR range).",
        f'{F["ip"]} : "203.0.113.7"',
        None,
    ),
    (
        "logto-failures-last-hour",
        "Logto: failures in the last hour",
        "Every failed event of the last hour.",
        f'{F["outcome"]} : "failure"',
        ("now-1h", "now"),
    ),
]

# (id, title, description, query): on the alerts data view, newest first, atop the dashboard.
ALERTS_SEARCH = (
    "logto-alerts",
    "Logto: alerts",
    "What logto-shipper's detections raised: rule, user or IP, how many events; open one for the ids.",
    "",
)

DASHBOARD = (
    "logto-auth-activity",
    "Logto auth activity",
    "Alerts; sign-ins, failures by IP and country, top users and applications, token exchanges, error codes.",
)
