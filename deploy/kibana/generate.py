"""Generate ``logto-auth.ndjson`` (Kibana 8.x saved objects) from ``spec.py``.

python deploy/kibana/generate.py            # rewrite the file
python deploy/kibana/generate.py --check    # exit 1 if the checked-in file is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import spec

OUT = Path(__file__).resolve().parent / "logto-auth.ndjson"
CORE = "8.8.0"
TYPE_VERSIONS = {"index-pattern": "8.0.0", "search": "8.0.0", "visualization": "8.5.0", "dashboard": "8.9.0"}
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def saved(
    type_: str, id_: str, attributes: dict[str, Any], references: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "attributes": attributes,
        "coreMigrationVersion": CORE,
        "id": id_,
        "managed": False,
        "references": references,
        "type": type_,
        "typeMigrationVersion": TYPE_VERSIONS[type_],
    }


def search_source(query: str) -> str:
    return json.dumps(
        {"query": {"query": query, "language": "kuery"}, "filter": [], "indexRefName": INDEX_REF}
    )


def index_ref(view: str = spec.DATA_VIEW_ID) -> list[dict[str, str]]:
    return [{"id": view, "name": INDEX_REF, "type": "index-pattern"}]


def data_view(
    view: str = spec.DATA_VIEW_ID,
    pattern: str = spec.PATTERN,
    name: str = "Logto audit log",
    formats: dict[str, Any] = spec.FIELD_FORMATS,
) -> dict[str, Any]:
    return saved(
        "index-pattern",
        view,
        {
            "title": pattern,
            "name": name,
            "timeFieldName": spec.F["time"],
            "fieldFormatMap": json.dumps(formats, sort_keys=True),
            "fields": "[]",
            "runtimeFieldMap": "{}",
            "sourceFilters": "[]",
            "fieldAttrs": "{}",
            "typeMeta": "{}",
            "allowNoIndex": True,
        },
        [],
    )


def aggs(buckets: list[tuple[Any, ...]], chart: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"id": "1", "enabled": True, "type": "count", "params": {}, "schema": "metric"}
    ]
    for i, b in enumerate(buckets, start=2):
        if b[0] == "time":
            out.append(
                {
                    "id": str(i),
                    "enabled": True,
                    "type": "date_histogram",
                    "schema": "segment",
                    "params": {
                        "field": spec.F["time"],
                        "interval": "auto",
                        "min_doc_count": 1,
                        "extended_bounds": {},
                    },
                }
            )
        else:
            kind, field, size = b
            schema = {"split": "group", "terms": "bucket" if chart == "table" else "segment"}[kind]
            out.append(
                {
                    "id": str(i),
                    "enabled": True,
                    "type": "terms",
                    "schema": schema,
                    "params": {
                        "field": field,
                        "size": size,
                        "order": "desc",
                        "orderBy": "1",
                        "otherBucket": False,
                        "missingBucket": False,
                    },
                }
            )
    return out


def vis_params(chart: str) -> dict[str, Any]:
    if chart == "table":
        return {"perPage": 10, "showPartialRows": False, "showMetricsAtAllLevels": False, "showTotal": False}
    if chart == "pie":
        return {
            "type": "pie",
            "addTooltip": True,
            "legendPosition": "right",
            "isDonut": True,
            "labels": {"show": False, "values": True, "last_level": True, "truncate": 100},
        }
    return {
        "type": "histogram",
        "addTooltip": True,
        "addLegend": True,
        "legendPosition": "right",
        "times": [],
        "addTimeMarker": False,
        "seriesParams": [
            {
                "show": True,
                "type": "histogram",
                "mode": "stacked",
                "data": {"label": "Count", "id": "1"},
                "valueAxis": "ValueAxis-1",
            }
        ],
    }


def visualization(
    id_: str, title: str, chart: str, query: str, buckets: list[tuple[Any, ...]]
) -> dict[str, Any]:
    vis = {"title": title, "type": chart, "params": vis_params(chart), "aggs": aggs(buckets, chart)}
    return saved(
        "visualization",
        id_,
        {
            "title": title,
            "description": "",
            "version": 1,
            "uiStateJSON": "{}",
            "visState": json.dumps(vis),
            "kibanaSavedObjectMeta": {"searchSourceJSON": search_source(query)},
        },
        index_ref(),
    )


def saved_search(
    id_: str,
    title: str,
    description: str,
    query: str,
    time: tuple[str, str] | None,
    view: str = spec.DATA_VIEW_ID,
    columns: list[str] = spec.COLUMNS,
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "title": title,
        "description": description,
        "columns": columns,
        "sort": [[spec.F["time"], "desc"]],
        "grid": {},
        "hideChart": False,
        "isTextBasedQuery": False,
        "kibanaSavedObjectMeta": {"searchSourceJSON": search_source(query)},
    }
    if time:
        attrs["timeRestore"] = True
        attrs["timeRange"] = {"from": time[0], "to": time[1]}
    return saved("search", id_, attrs, index_ref(view))


def alerts_search() -> dict[str, Any]:
    return saved_search(*spec.ALERTS_SEARCH, None, spec.ALERTS_VIEW_ID, spec.ALERT_COLUMNS)


def dashboard() -> dict[str, Any]:
    id_, title, description = spec.DASHBOARD
    panels, refs = [], []
    top = 10  # the alerts table first: what needs attention
    layout = [(0, 0, 48, top), (0, top, 48, 12)] + [
        (24 * (i % 2), top + 12 + 12 * (i // 2), 24, 12) for i in range(len(spec.PANELS) - 1)
    ]
    items = [(spec.ALERTS_SEARCH[0], "search")] + [(p[0], "visualization") for p in spec.PANELS]
    items.append(("logto-events", "search"))
    layout.append((0, top + 12 + 12 * ((len(spec.PANELS)) // 2), 48, 15))
    for n, ((obj_id, obj_type), (x, y, w, h)) in enumerate(zip(items, layout, strict=True)):
        ref = f"panel_{n}"
        panels.append(
            {
                "version": "8.8.0",
                "type": obj_type,
                "gridData": {"x": x, "y": y, "w": w, "h": h, "i": str(n)},
                "panelIndex": str(n),
                "embeddableConfig": {"enhancements": {}},
                "panelRefName": ref,
            }
        )
        refs.append({"id": obj_id, "name": ref, "type": obj_type})
    return saved(
        "dashboard",
        id_,
        {
            "title": title,
            "description": description,
            "version": 1,
            "timeRestore": True,
            "timeFrom": "now-7d",
            "timeTo": "now",
            "refreshInterval": {"pause": True, "value": 60000},
            "optionsJSON": json.dumps(
                {
                    "useMargins": True,
                    "syncColors": False,
                    "syncCursor": True,
                    "syncTooltips": False,
                    "hidePanelTitles": False,
                }
            ),
            "panelsJSON": json.dumps(panels),
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"}, "filter": []})
            },
        },
        refs,
    )


def objects() -> list[dict[str, Any]]:
    alerts_view = data_view(
        spec.ALERTS_VIEW_ID, spec.ALERTS_PATTERN, "logto-shipper alerts", {"related.ip": {"id": "ip"}}
    )
    return (
        [data_view(), alerts_view]
        + [visualization(*p) for p in spec.PANELS]
        + [saved_search(*s) for s in spec.SEARCHES]
        + [alerts_search(), dashboard()]
    )


def render() -> str:
    return "".join(json.dumps(o, sort_keys=True) + "\n" for o in objects())


def main() -> None:
    text = render()
    if "--check" in sys.argv:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: run python deploy/kibana/generate.py", file=sys.stderr)
            sys.exit(1)
        return
    OUT.write_text(text)
    print(f"wrote {len(objects())} objects to {OUT}")


if __name__ == "__main__":
    main()
