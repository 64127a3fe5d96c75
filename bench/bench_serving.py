"""Online serving: finfeast's online-store plugin vs stock Feast vs the raw Redis floor, one run.

Two Feast repos built from the same data (50 real-price features of the S&P 500 file, 505
symbols, real Redis, own projects): one with `type: redis` (stock Feast), one with
`type: finfeast.feast_plugins.online.FinfeastRedisOnlineStore` (the plugin). Measured:
  floor        raw redis-py: HMGET of the same 51 hash fields (1 key) / a 100-key pipeline
  sdk stock    `store.get_online_features(service, rows).to_dict()` on the stock repo
  sdk plugin   the same call on the plugin repo (`.to_dict()`; `+proto` also builds the proto,
               which is what `feast serve` serialises)
  push         `store.push` of 1,000 rows vs the stream jobs' fast writer
               (`stream_jobs.online_writer.RedisOnlineWriter`) writing the same rows: stock
               Feast; the plugin with `provider: finfeast.feast_plugins.provider.FinfeastProvider`
               (columnar `ingest_df`) and `registry_store_type: ...FinfeastFileRegistryStore`
               (what the repo YAMLs configure); the same with Feast's file registry store; the
               plugin with `provider: local` (Feast's own `ingest_df`, per-cell protos)
  handler      the steps of stock `feast serve`'s `/get-online-features` handler, in process, on
               the plugin repo (feature-service lookup, read, proto, dict, JSON)
  http         stock `feast serve` (defaults; and tuned: -w N --no-access-log --max-requests 0)
               on the stock repo, the same tuned `feast serve` on the plugin repo, both also
               with feature-list requests; `finfeast serve` (plugin + metrics middleware); and
               the HTTP floor (bench/http_floor.py: feast serve's gunicorn/uvicorn/FastAPI stack
               answering a constant body): sequential over one keep-alive connection, then
               --clients concurrent keep-alive clients for --seconds.

Usage: .venv/bin/python bench/bench_serving.py [--quick] [--seconds 60] [--skip-stock]
Prints a Markdown block for bench/RESULTS.md. Machine noise is large: compare ratios in one run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.price_repo import SERVICE, VIEWS, build_price_repo, drop_online_keys  # noqa: E402
from finfeast.processes import stop_process_group  # noqa: E402

PYTHON = sys.executable
FEAST = str(Path(sys.executable).with_name("feast"))
FINFEAST = str(Path(sys.executable).with_name("finfeast"))
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
STOCK_DEFAULTS = "stock feast serve, stock store (defaults)"
OPTIMIZED = "PYTHONOPTIMIZE=1 (measurement only)"
HTTP_FLOOR = "HTTP floor (feast serve's gunicorn/uvicorn/FastAPI, constant body)"


# ---- measurement helpers ---------------------------------------------------------------------
def percentiles(samples_s: list[float]) -> dict[str, float]:
    arr = np.asarray(samples_s) * 1000.0
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "n": len(arr),
    }


def timed(fn, n: int, warmup: int = 20) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return percentiles(out)


class KeepAliveClient:
    """Minimal HTTP/1.1 client over one persistent socket (cheap enough not to be the bottleneck)."""

    def __init__(self, host: str, port: int) -> None:
        self.addr = (host, port)
        self.reconnects = 0
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.create_connection(self.addr)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def request_retrying(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """`request`, reconnecting once if the server dropped the connection (counted)."""
        try:
            return self.request(method, path, body)
        except OSError:
            self.reconnects += 1
            self.sock.close()
            self._connect()
            return self.request(method, path, body)

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.sock.sendall(head + body)
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        header, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = header.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            rest += chunk
        self.buf = rest[length:]
        return status, rest[:length]

    def close(self) -> None:
        self.sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            client = KeepAliveClient("127.0.0.1", port)
            status, _ = client.request("GET", "/health")
            client.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("server did not become healthy")


def start_server(
    cmd: list[str], port: int, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        cmd,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    wait_healthy(port, proc)
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    stop_process_group(proc, timeout=20)


def _load_worker(port: int, bodies: list[bytes], seconds: float, queue: mp.Queue) -> None:
    client = KeepAliveClient("127.0.0.1", port)
    lat: list[float] = []
    errors = 0
    i = 0
    end = time.perf_counter() + seconds
    while True:
        t = time.perf_counter()
        if t >= end:
            break
        try:
            status, _ = client.request("POST", "/get-online-features", bodies[i % len(bodies)])
            if status != 200:
                errors += 1
        except OSError:
            errors += 1
            client = KeepAliveClient("127.0.0.1", port)
        lat.append(time.perf_counter() - t)
        i += 1
    client.close()
    queue.put((lat, errors))


def load_test(port: int, bodies: list[bytes], clients: int, seconds: float) -> dict[str, float]:
    queue: mp.Queue = mp.Queue()
    procs = [
        mp.Process(target=_load_worker, args=(port, bodies, seconds, queue)) for _ in range(clients)
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    lat = [x for r in results for x in r[0]]
    errors = sum(r[1] for r in results)
    stats = percentiles(lat)
    # Requests/s over the clients' own measuring window (process start-up excluded).
    stats.update(rps=len(lat) / seconds, errors=errors, requests=len(lat), wall_s=wall)
    return stats


def http_sequential(port: int, body_1: bytes, body_100: bytes, n: int) -> dict[str, dict]:
    client = KeepAliveClient("127.0.0.1", port)
    for body in (body_1, body_100):
        status, payload = client.request("POST", "/get-online-features", body)
        assert status == 200, payload[:300]
    out = {
        "1": timed(lambda: client.request_retrying("POST", "/get-online-features", body_1), n),
        "100": timed(
            lambda: client.request_retrying("POST", "/get-online-features", body_100), n // 4
        ),
        "reconnects": client.reconnects,
    }
    client.close()
    return out


# ---- main --------------------------------------------------------------------------------------
def _push_frame(n: int, base_s: float):  # noqa: ANN202 - a DataFrame
    import pandas as pd

    stamp = pd.Timestamp(base_s, unit="s", tz="UTC")
    return pd.DataFrame(
        {
            "symbol": [f"B{i}" for i in range(n)],
            "close": [100.0 + i / 7 for i in range(n)],
            "event_timestamp": [stamp] * n,
            "created_timestamp": [stamp] * n,
        }
    )


def bench_push(stores: dict, project: str, reps: int, block: int = 5) -> dict:
    """store.push of 1,000 rows (each rep newer) vs the fast writer writing the same rows.

    Each timed call builds its frame (as the fast writer's call builds its rows). Blocks of
    `block` calls per writer alternate (A B C ... A B C ...), each block after one untimed call:
    Feast keeps the objects it builds from the registry in process-wide single-entry caches, so
    FeatureStores pushing one after the other would evict each other's entries (a process
    normally holds one store), while alternating blocks still spread load changes over all.
    """
    import redis
    from feast.data_source import PushMode

    from stream_jobs.online_writer import RedisOnlineWriter
    from stream_jobs.views import ViewSpec

    base = time.time()
    counter = iter(range(1, 10_000_000))
    writer = RedisOnlineWriter(redis.Redis(host="127.0.0.1", port=6379), project)
    view = ViewSpec("px_live", "symbol", (("close", "float64"),))

    def fast() -> None:
        frame = _push_frame(1000, base + next(counter))
        ms = int(frame["event_timestamp"].iloc[0].timestamp() * 1000)
        rows = [(s, ms, {"close": c}) for s, c in zip(frame["symbol"], frame["close"], strict=True)]
        assert writer.write(view, rows).written == 1000

    calls = {
        f"push {name}": lambda store=store: store.push(
            "px_push", _push_frame(1000, base + next(counter)), to=PushMode.ONLINE
        )
        for name, store in stores.items()
    }
    calls["fast writer (stream jobs)"] = fast
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _round in range(max(1, reps // block)):
        for name, call in calls.items():
            call()
            for _ in range(block):
                t = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - t)
    return {name: percentiles(lat) for name, lat in samples.items()}


def handler_steps(store, reps: int) -> dict:  # noqa: ANN001 - a feast.FeatureStore
    """Stock `feast serve`'s `/get-online-features` steps, timed one by one in process.

    The handler (feast/feature_server.py, Feast 0.67): `store.get_feature_service(name,
    allow_cache=True)` (a feature-service request), `store.get_online_features_async(...)`,
    `convert_response_to_dict(response.proto)`, `JSONResponse(...)`. One entity, the plugin repo.
    """
    import asyncio

    from fastapi.responses import JSONResponse
    from feast.feature_server_utils import convert_response_to_dict

    loop = asyncio.new_event_loop()
    service = store.get_feature_service(SERVICE, allow_cache=True)
    entities = {"symbol": ["AAPL"]}

    def read():  # noqa: ANN202
        return loop.run_until_complete(
            store.get_online_features_async(features=service, entity_rows=entities)
        )

    response = read()
    proto = response.proto
    as_dict = convert_response_to_dict(proto)
    out = {
        "get_feature_service (registry -> FeatureService.from_proto)": timed(
            lambda: store.get_feature_service(SERVICE, allow_cache=True), reps
        ),
        "get_online_features_async (plugin)": timed(read, reps),
        "response.proto (plugin's lazy proto)": timed(lambda: response._build_proto(), reps),
        "convert_response_to_dict": timed(lambda: convert_response_to_dict(proto), reps),
        "JSONResponse": timed(lambda: JSONResponse(content=as_dict).body, reps),
    }
    loop.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (10 s load, fewer reps)")
    parser.add_argument("--seconds", type=float, default=None, help="load test duration")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--skip-stock", action="store_true", help="skip stock `feast serve`")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, help="also write raw numbers here")
    args = parser.parse_args()
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    reps = 300 if args.quick else 2000
    data_dir = args.data_dir or Path(
        os.environ.get("FINFEAST_DATA_DIR", REPO_ROOT.parent / "shared" / "data")
    )
    import redis

    from finfeast.feast_plugins import encoding as enc

    run = uuid.uuid4().hex[:8]
    root = Path(tempfile.mkdtemp(prefix="finfeast_bench_serving_"))
    repos = {}
    for label, online in (("stock", "redis"), ("plugin", "finfeast_redis")):
        t = time.perf_counter()
        repos[label] = build_price_repo(root / label, data_dir, f"bench_{label}_{run}", online)
        print(f"built {label} repo in {time.perf_counter() - t:.1f}s", flush=True)
    repo = repos["plugin"]
    results: dict[str, object] = {"features": len(repo.features), "seconds": seconds}
    procs: list[subprocess.Popen] = []
    try:
        stores = {label: r.store() for label, r in repos.items()}
        services = {label: st.get_feature_service(SERVICE) for label, st in stores.items()}
        assert type(stores["plugin"].provider).__name__ == "FinfeastProvider"
        local_yaml = repo.path / "feature_store_provider_local.yaml"
        local_yaml.write_text(
            repo.yaml.read_text().replace(
                "provider: finfeast.feast_plugins.provider.FinfeastProvider", "provider: local"
            )
        )
        from feast import FeatureStore

        plugin_local = FeatureStore(repo_path=str(repo.path), fs_yaml_file=local_yaml)
        feast_registry_yaml = repo.path / "feature_store_feast_registry_store.yaml"
        feast_registry_yaml.write_text(
            repo.yaml.read_text().replace(
                "  registry_store_type: finfeast.feast_plugins.registry.FinfeastFileRegistryStore\n",
                "",
            )
        )
        plugin_feast_registry = FeatureStore(
            repo_path=str(repo.path), fs_yaml_file=feast_registry_yaml
        )
        syms = list(repo.symbols)
        one = [{"symbol": "AAPL"}]
        hundred = [{"symbol": s} for s in syms[:100]]

        raw = redis.Redis(host="127.0.0.1", port=6379)
        fields = [enc.feature_field(v, f) for v, feats in VIEWS.items() for f in feats]
        fields += [enc.ts_field(v) for v in VIEWS]
        keys = [
            enc.redis_key(enc.entity_key_bytes(["symbol"], [r["symbol"]]), repo.project)
            for r in hundred
        ]
        assert all(raw.exists(k) for k in keys)

        def floor_100() -> None:
            pipe = raw.pipeline(transaction=False)
            for k in keys:
                pipe.hmget(k, fields)
            pipe.execute()

        def sdk(label: str, rows: list, proto: bool = False):  # noqa: ANN202
            store, service = stores[label], services[label]

            def call() -> None:
                resp = store.get_online_features(features=service, entity_rows=rows)
                resp.to_dict()
                if proto:
                    resp.proto  # noqa: B018 - what feast serve serialises

            return call

        # correctness guard: both repos answer the same values
        a = stores["stock"].get_online_features(services["stock"], hundred).to_dict()
        b = stores["plugin"].get_online_features(services["plugin"], hundred).to_dict()
        assert a.keys() == b.keys() and all(
            np.allclose(np.array(a[k], dtype=float), np.array(b[k], dtype=float), equal_nan=True)
            for k in a
            if k != "symbol"
        )
        in_process = {
            "floor (raw redis-py)": {
                "1": timed(lambda: raw.hmget(keys[0], fields), reps),
                "100": timed(floor_100, reps // 4),
            },
            "sdk stock Feast": {
                "1": timed(sdk("stock", one), reps),
                "100": timed(sdk("stock", hundred), reps // 8),
            },
            "sdk plugin": {
                "1": timed(sdk("plugin", one), reps),
                "100": timed(sdk("plugin", hundred), reps // 4),
            },
            "sdk plugin +proto": {
                "1": timed(sdk("plugin", one, True), reps),
                "100": timed(sdk("plugin", hundred, True), reps // 4),
            },
        }
        results["in_process"] = in_process
        print(json.dumps(in_process, indent=1), flush=True)
        push_stores = {
            "stock": stores["stock"],
            "plugin + FinfeastProvider + FinfeastFileRegistryStore": stores["plugin"],
            "plugin + FinfeastProvider, Feast's FileRegistryStore": plugin_feast_registry,
            "plugin, provider: local (Feast's ingest_df)": plugin_local,
        }
        results["push"] = bench_push(push_stores, repo.project, 20 if args.quick else 40)
        assert stores["plugin"].provider.ingest_counts["feast"] == 0
        results["handler"] = handler_steps(stores["plugin"], reps)
        print(json.dumps(results["handler"], indent=1), flush=True)
        print(json.dumps(results["push"], indent=1), flush=True)

        body_1 = json.dumps({"feature_service": SERVICE, "entities": {"symbol": ["AAPL"]}}).encode()
        body_100 = json.dumps(
            {"feature_service": SERVICE, "entities": {"symbol": syms[:100]}}
        ).encode()
        # The load test spreads requests over all symbols, one entity per request.
        bodies = [
            json.dumps({"feature_service": SERVICE, "entities": {"symbol": [s]}}).encode()
            for s in syms
        ]
        refs = [f"{v}:{f}" for v, feats in VIEWS.items() for f in feats]
        list_bodies = {
            "1": json.dumps({"features": refs, "entities": {"symbol": ["AAPL"]}}).encode(),
            "100": json.dumps({"features": refs, "entities": {"symbol": syms[:100]}}).encode(),
            "load": [
                json.dumps({"features": refs, "entities": {"symbol": [s]}}).encode() for s in syms
            ],
        }
        fs_bodies = {"1": body_1, "100": body_100, "load": bodies}
        from feast.feature_server_utils import convert_response_to_dict

        floor_body = convert_response_to_dict(
            stores["plugin"].get_online_features(services["plugin"], one).proto
        )
        tuned = ["-w", str(args.workers), "--no-access-log", "--max-requests", "0"]
        tuned += ["--keep-alive-timeout", "30"]
        stock_serve = [FEAST, "-f", str(repos["stock"].yaml), "serve"]
        plugin_serve = [FEAST, "-f", str(repo.yaml), "serve", *tuned]
        # name -> (command without its port, request kind, extra environment)
        servers: dict[str, tuple[list[str], str, dict[str, str]]] = {}
        if not args.skip_stock:
            servers[f"{STOCK_DEFAULTS}"] = (stock_serve, "service", {})
        servers["stock feast serve, stock store (tuned)"] = ([*stock_serve, *tuned], "service", {})
        servers["stock feast serve, plugin store (tuned)"] = (plugin_serve, "service", {})
        # Measurement only (not a configuration finfeast uses): with asserts and typeguard's
        # runtime checks off, what Feast's per-request FeatureService.from_proto costs shows.
        servers[f"stock feast serve, plugin store (tuned), {OPTIMIZED}"] = (
            plugin_serve,
            "service",
            {"PYTHONOPTIMIZE": "1"},
        )
        if not args.skip_stock:
            servers[f"{STOCK_DEFAULTS}, feature list"] = (stock_serve, "list", {})
        servers["stock feast serve, plugin store (tuned), feature list"] = (
            plugin_serve,
            "list",
            {},
        )
        servers["finfeast serve (plugin + middleware)"] = (
            [
                FINFEAST,
                "serve",
                "--feature-store-yaml",
                str(repo.yaml),
                "--workers",
                str(args.workers),
                "--no-serving-logs",
            ],
            "service",
            {},
        )
        servers[HTTP_FLOOR] = (
            [
                GUNICORN,
                "-k",
                "uvicorn_worker.UvicornWorker",
                "-w",
                str(args.workers),
                "--keep-alive",
                "30",
                "--chdir",
                str(REPO_ROOT),
                "bench.http_floor:app",
            ],
            "service",
            {"FINFEAST_FLOOR_BODY": json.dumps(floor_body)},
        )
        http: dict[str, object] = {}
        for name, (cmd, kind, env) in servers.items():
            port = free_port()
            if cmd[0] == GUNICORN:
                full = [*cmd, "--bind", f"127.0.0.1:{port}"]
            else:
                full = [*cmd, "--port", str(port)]
            kind_bodies = list_bodies if kind == "list" else fs_bodies
            proc = start_server(full, port, root / f"server_{port}.log", env)
            procs.append(proc)
            try:
                seq = http_sequential(port, kind_bodies["1"], kind_bodies["100"], reps)
                load = load_test(port, kind_bodies["load"], args.clients, seconds)
            finally:
                stop_server(proc)
                procs.remove(proc)
            http[name] = {"sequential": seq, "load": load, "kind": kind}
            print(name, json.dumps(http[name]), flush=True)
        results["http"] = http
    finally:
        for proc in procs:
            stop_server(proc)
        for r in repos.values():
            drop_online_keys(r)
    results["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(render_markdown(results, args, len(repo.symbols)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def render_markdown(results: dict, args: argparse.Namespace, n_symbols: int) -> str:
    ip = results["in_process"]
    floor = ip["floor (raw redis-py)"]
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: 2 cores (shared); "
        f"{results['features']} features (real S&P 500 prices, {n_symbols} symbols), Redis 7 on "
        f"loopback; {args.clients} clients x {results['seconds']:g} s load, "
        f"{args.workers} workers.",
        f"`uptime` at the end: {results['uptime']}",
        "",
        "| in-process path | 1 entity p50 / p99 ms | 100 entities p50 / p99 ms | "
        "100-entity p50 vs floor |",
        "|---|---|---|---|",
    ]
    for name, r in ip.items():
        lines.append(
            f"| {name} | {r['1']['p50_ms']:.3f} / {r['1']['p99_ms']:.3f} | "
            f"{r['100']['p50_ms']:.2f} / {r['100']['p99_ms']:.2f} | "
            f"{r['100']['p50_ms'] / floor['100']['p50_ms']:.2f}x |"
        )
    push = results["push"]
    fast = push["fast writer (stream jobs)"]["p50_ms"]
    lines += ["", "| 1,000-row online write | p50 / p99 ms | vs fast writer |", "|---|---|---|"]
    for name, r in push.items():
        lines.append(
            f"| {name} | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} | {r['p50_ms'] / fast:.2f}x |"
        )
    lines += [
        "",
        "| `feast serve` handler step (in process, 1 entity) | p50 / p99 ms |",
        "|---|---|",
    ]
    for name, r in results["handler"].items():
        lines.append(f"| {name} | {r['p50_ms']:.3f} / {r['p99_ms']:.3f} |")
    http = results["http"]
    bases = {
        "service": http.get(STOCK_DEFAULTS) or next(iter(http.values())),
        "list": http.get(f"{STOCK_DEFAULTS}, feature list") or next(iter(http.values())),
    }
    lines += [
        "",
        "| HTTP server | seq 1 entity p50 / p99 ms | seq 100 entities p50 / p99 ms | "
        f"{args.clients} clients req/s | vs stock defaults (same request kind) | p50 / p99 ms under load | "
        "1-entity p99 under load vs floor p99 | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in http.items():
        s, ld = r["sequential"], r["load"]
        base = bases[r["kind"]]
        drops = f" ({s['reconnects']} dropped connections)" if s["reconnects"] else ""
        lines.append(
            f"| {name}{drops} | {s['1']['p50_ms']:.2f} / {s['1']['p99_ms']:.2f} | "
            f"{s['100']['p50_ms']:.2f} / {s['100']['p99_ms']:.2f} | {ld['rps']:.0f} | "
            f"{ld['rps'] / base['load']['rps']:.1f}x | {ld['p50_ms']:.2f} / {ld['p99_ms']:.2f} | "
            f"{s['1']['p99_ms'] / floor['1']['p99_ms']:.1f}x seq | {ld['errors']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
