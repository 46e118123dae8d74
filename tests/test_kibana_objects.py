"""config/kibana/*.ndjson: the newsroom desk dashboard imports through Kibana's Saved Objects API.

No Kibana runs here, so the checks are the ones an import would fail on: every line parses, every
reference resolves to an object in the same file, the JSON that Kibana keeps inside strings parses
too, and every field a panel uses exists in the Elasticsearch mappings the store creates.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KIBANA = REPO / "config" / "kibana"
ES_CONFIG = REPO / "config" / "elasticsearch"
NDJSON_FILES = sorted(KIBANA.glob("*.ndjson"))


def load(path: Path) -> list[dict]:
    objects = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            pytest.fail(f"{path.name}:{lineno}: not JSON: {err}")
        assert isinstance(obj, dict), f"{path.name}:{lineno}: not an object"
        objects.append(obj)
    return objects


def mapped_fields(properties: dict, prefix: str = "") -> set[str]:
    names = set()
    for name, spec in properties.items():
        full = prefix + name
        names.add(full)
        names.update(mapped_fields(spec.get("properties", {}), full + "."))
        names.update(f"{full}.{sub}" for sub in spec.get("fields", {}))
    return names


def index_fields() -> dict[str, set[str]]:
    """Fields per data view title, from the same files the store and setup.sh apply."""
    template = json.loads((ES_CONFIG / "articles-template.json").read_text(encoding="utf-8"))
    alerts = json.loads((ES_CONFIG / "indices" / "alerts.json").read_text(encoding="utf-8"))
    return {
        "newsmon-articles-read": mapped_fields(template["template"]["mappings"]["properties"]),
        "newsmon-alerts": mapped_fields(alerts["mappings"]["properties"]),
    }


@pytest.fixture(scope="module", params=[p.name for p in NDJSON_FILES] or ["(none)"])
def objects(request) -> list[dict]:
    if request.param == "(none)":
        pytest.fail("no config/kibana/*.ndjson")
    return load(KIBANA / request.param)


def test_every_line_is_a_saved_object_with_a_unique_id(objects):
    seen = set()
    for obj in objects:
        assert {"id", "type", "attributes", "references"} <= set(obj), obj.get("id")
        assert obj["attributes"].get("title"), obj["id"]
        assert (obj["type"], obj["id"]) not in seen, obj["id"]
        seen.add((obj["type"], obj["id"]))


def test_every_reference_resolves_within_the_file(objects):
    present = {(o["type"], o["id"]) for o in objects}
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in present, f"{obj['id']} -> {ref['type']}:{ref['id']}"
        names = [ref["name"] for ref in obj["references"]]
        assert len(names) == len(set(names)), obj["id"]


def test_embedded_json_parses_and_names_existing_references(objects):
    for obj in objects:
        attributes, names = obj["attributes"], {r["name"] for r in obj["references"]}
        for key in ("visState", "uiStateJSON", "panelsJSON", "optionsJSON", "layerListJSON", "mapStateJSON"):
            if key in attributes:
                json.loads(attributes[key])
        source = json.loads(attributes.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON", "{}"))
        if "indexRefName" in source:
            assert source["indexRefName"] in names, obj["id"]
        for panel in json.loads(attributes.get("panelsJSON", "[]")):
            assert f"{panel['panelIndex']}:{panel['panelRefName']}" in names, (obj["id"], panel)
        for layer in json.loads(attributes.get("layerListJSON", "[]")):
            ref_name = layer.get("sourceDescriptor", {}).get("indexPatternRefName")
            if ref_name:
                assert ref_name in names, (obj["id"], layer["id"])


def test_the_desk_dashboard_has_every_panel_the_desk_asked_for(objects):
    by_id = {o["id"]: o for o in objects}
    dashboards = [o for o in objects if o["type"] == "dashboard"]
    assert len(dashboards) == 1
    panels = [by_id[r["id"]] for r in dashboards[0]["references"]]
    kinds = {(p["type"], json.loads(p["attributes"].get("visState", "{}")).get("type")) for p in panels}
    assert ("map", None) in kinds  # places
    assert ("search", None) in kinds  # latest alerts
    fields_used = set()
    for panel in panels:
        for agg in json.loads(panel["attributes"].get("visState", "{}")).get("aggs", []):
            fields_used.add(agg.get("params", {}).get("field"))
    assert {"event_time", "topic_ids", "development.type", "source"} <= fields_used


def test_panels_use_only_mapped_fields(objects):
    views = {o["id"]: o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    fields = index_fields()
    assert set(views.values()) <= set(fields), views
    for view in (o for o in objects if o["type"] == "index-pattern"):
        assert view["attributes"]["timeFieldName"] in fields[view["attributes"]["title"]]
    for obj in objects:
        view_ids = [r["id"] for r in obj["references"] if r["type"] == "index-pattern"]
        if not view_ids:
            continue
        known = fields[views[view_ids[0]]]
        attributes = obj["attributes"]
        used = [agg["params"]["field"] for agg in json.loads(attributes.get("visState", "{}")).get("aggs", [])
                if "field" in agg.get("params", {})]
        used += [c for c in attributes.get("columns", [])]
        used += [s[0] for s in attributes.get("sort", [])]
        for layer in json.loads(attributes.get("layerListJSON", "[]")):
            descriptor = layer.get("sourceDescriptor", {})
            used += [descriptor[k] for k in ("geoField", "sortField") if descriptor.get(k)]
            used += descriptor.get("tooltipProperties", [])
        missing = [f for f in used if f not in known]
        assert not missing, f"{obj['id']} uses unmapped fields {missing}"


def test_a_broken_reference_would_be_caught(tmp_path):
    source = NDJSON_FILES[0].read_text(encoding="utf-8")
    broken = tmp_path / "broken.ndjson"
    broken.write_text(source.replace('"id":"newsmon-sources"', '"id":"newsmon-sources-renamed"', 1))
    objects = load(broken)
    present = {(o["type"], o["id"]) for o in objects}
    dangling = [r for o in objects for r in o["references"] if (r["type"], r["id"]) not in present]
    assert dangling == [{"name": "4:panel_4", "type": "visualization", "id": "newsmon-sources"}]


def test_map_layers_draw_clusters_and_need_no_internet(objects):
    """Kibana draws clusters only from a BLENDED_VECTOR layer (a GEOJSON_VECTOR one with
    scalingType CLUSTERS shows raw points), and an Elastic Maps Service basemap needs the internet,
    which a newsroom's Kibana may lack: the map ships without one (docs/elasticsearch.md)."""
    layers = [layer for obj in objects if obj["type"] == "map"
              for layer in json.loads(obj["attributes"]["layerListJSON"])]
    assert layers
    for layer in layers:
        source = layer.get("sourceDescriptor", {})
        if source.get("scalingType") == "CLUSTERS":
            assert layer["type"] == "BLENDED_VECTOR", layer["id"]
        assert not layer["type"].startswith("EMS_") and not source.get("type", "").startswith("EMS_"), layer["id"]
