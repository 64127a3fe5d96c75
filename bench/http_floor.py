"""The HTTP floor of `feast serve`: its server stack answering a constant body, no Feast work.

A benchmark fixture (not product code). Same stack as stock `feast serve` on Linux: gunicorn with
`uvicorn_worker.UvicornWorker`, a FastAPI app, the request parsed into Feast's own pydantic
`GetOnlineFeaturesRequest`, a `JSONResponse` of a real response dict (one `/get-online-features`
answer of the bench's plugin repo, stored in FINFEAST_FLOOR_BODY by the bench). What a request
costs here is what no online store, provider or feature service can take off a stock
`feast serve` request.

Run by bench/bench_serving.py: `gunicorn -k uvicorn_worker.UvicornWorker bench.http_floor:app`.
"""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from feast.feature_server import GetOnlineFeaturesRequest

app = FastAPI()
_BODY: dict[str, Any] = json.loads(os.environ.get("FINFEAST_FLOOR_BODY", "{}"))


@app.post("/get-online-features")
async def get_online_features(request: GetOnlineFeaturesRequest) -> Any:
    """Parse as Feast does, answer the stored body (no registry, no store, no threadpool)."""
    return JSONResponse(content=_BODY)


@app.get("/health")
async def health() -> Any:
    return JSONResponse(content={"status": "ok"})
