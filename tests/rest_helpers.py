"""Shared pieces of the REST source tests: a pipeline spec around a source, its environment, paged answers."""

from __future__ import annotations

import json
from pathlib import Path

from werkzeug import Request, Response

from etl_platform.engine.environment import Environment
from etl_platform.settings import Secrets
from etl_platform.spec.loader import spec_from_document
from etl_platform.spec.pipeline import PipelineSpec

SECRETS = {"API_KEY": "sekret-key-123", "TOKEN": "tok-456", "PASSWORD": "pw-789", "CLIENT_SECRET": "cs-000"}


def rest_pipeline(base_url: str, resource: dict, client: dict | None = None, write: str = "append", **fields) -> PipelineSpec:
    document = {
        "id": "rest_items",
        "source": {"type": "rest", "client": {"base_url": base_url, **(client or {})}, "resource": resource},
        "destination": {"dataset": "analytics.items", "write": write, **({"primary_key": ["id"]} if write == "merge" else {})},
        **fields,
    }
    return spec_from_document(document)


def environment(warehouse_url: str, tmp_path: Path) -> Environment:
    (tmp_path / "landing").mkdir(exist_ok=True)
    return Environment.at(warehouse_url, tmp_path / "landing", tmp_path / "lake", secrets=Secrets(SECRETS))


def json_response(body: object, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")


def offset_page(records: list[dict], request: Request, total: bool = True) -> Response:
    offset, limit = int(request.args["offset"]), int(request.args["limit"])
    body: dict = {"data": records[offset : offset + limit]}
    if total:
        body["total"] = len(records)
    return json_response(body)
