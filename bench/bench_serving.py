"""Online serving latency and throughput, with the raw Redis floor measured in the same run.

What is measured (50 real-price features of the S&P 500 file, 505 symbols, real Redis):
  floor     raw redis-py: HMGET of the same hash fields (1 key) / a 100-key pipeline
  sdk       FeatureStore.get_online_features with the feature service (stock Feast SDK)
  lean      finfeast.serving.RedisOnlineReader (same results, proven in tests/serving)
  lean+hot  the same with the hot-entity cache (freshness bound --cache-ms)
  http      `finfeast serve` (lean path), `finfeast serve --feast-only` (Feast's handler with
            tuned workers) and stock `feast serve` defaults, sequential over one keep-alive
            connection; then 8 concurrent keep-alive clients (one process each) for --seconds.

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

from finfeast.processes import stop_process_group  # noqa: E402
from bench.price_repo import SERVICE, build_price_repo, drop_online_keys  # noqa: E402

PYTHON = sys.executable
FEAST = str(Path(sys.executable).with_name("feast"))
FINFEAST = str(Path(sys.executable).with_name("finfeast"))


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


def start_server(cmd: list[str], port: int, log: Path) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
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


def scrape_hit_ratio(port: int) -> float | None:
    """The server's own hot-entity cache hit ratio (None for servers without /metrics)."""
    client = KeepAliveClient("127.0.0.1", port)
    status, body = client.request("GET", "/metrics")
    client.close()
    if status != 200:
        return None
    for line in body.decode().splitlines():
        if line.startswith("finfeast_serving_cache_hit_ratio "):
            return float(line.split()[1])
    return None


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
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (10 s load, fewer reps)")
    parser.add_argument("--seconds", type=float, default=None, help="load test duration")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--cache-ms", type=float, default=50.0)
    parser.add_argument("--skip-stock", action="store_true", help="skip stock `feast serve`")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, help="also write raw numbers here")
    args = parser.parse_args()
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    reps = 300 if args.quick else 2000
    data_dir = args.data_dir or Path(
        os.environ.get("FINFEAST_DATA_DIR", REPO_ROOT.parent / "shared" / "data")
    )

    from feast import FeatureStore

    from finfeast.serving.hot_cache import HotEntityCache
    from finfeast.serving.online_reader import RedisOnlineReader

    project = f"bench_{uuid.uuid4().hex[:8]}"
    root = Path(tempfile.mkdtemp(prefix="finfeast_bench_serving_"))
    t = time.perf_counter()
    repo = build_price_repo(root / "repo", data_dir, project, online="redis")
    print(
        f"built repo {project}: {len(repo.symbols)} symbols x {len(repo.features)} features "
        f"in {time.perf_counter() - t:.1f}s",
        flush=True,
    )
    results: dict[str, object] = {"features": len(repo.features), "seconds": seconds}
    procs: list[subprocess.Popen] = []
    try:
        store: FeatureStore = repo.store()
        service = store.get_feature_service(SERVICE)
        syms = list(repo.symbols)
        one = [{"symbol": "AAPL"}]
        hundred = [{"symbol": s} for s in syms[:100]]

        reader = RedisOnlineReader(store)
        plan = reader.plan(feature_service=SERVICE)
        import redis

        raw = redis.Redis(host="127.0.0.1", port=6379)
        keys = [reader._redis_key(plan, s["symbol"]) for s in hundred]
        fields = plan.fields

        def floor_100() -> None:
            pipe = raw.pipeline(transaction=False)
            for k in keys:
                pipe.hmget(k, fields)
            pipe.execute()

        hot = RedisOnlineReader(store, cache=HotEntityCache(args.cache_ms))
        sdk = {
            "floor": {
                "1": timed(lambda: raw.hmget(keys[0], fields), reps),
                "100": timed(floor_100, reps // 4),
            },
            "sdk": {
                "1": timed(
                    lambda: store.get_online_features(features=service, entity_rows=one), reps
                ),
                "100": timed(
                    lambda: store.get_online_features(features=service, entity_rows=hundred),
                    reps // 8,
                ),
            },
            "lean": {
                "1": timed(lambda: reader.get_online_features(SERVICE, one), reps),
                "100": timed(lambda: reader.get_online_features(SERVICE, hundred), reps // 4),
            },
            "lean+hot": {
                "1": timed(lambda: hot.get_online_features(SERVICE, one), reps),
                "100": timed(lambda: hot.get_online_features(SERVICE, hundred), reps // 4),
            },
        }
        sdk["lean+hot"]["hit_ratio"] = round(hot.cache.hit_ratio, 4)  # type: ignore[union-attr]
        results["in_process"] = sdk
        print(json.dumps(sdk, indent=1), flush=True)

        body_1 = json.dumps({"feature_service": SERVICE, "entities": {"symbol": ["AAPL"]}}).encode()
        body_100 = json.dumps(
            {"feature_service": SERVICE, "entities": {"symbol": syms[:100]}}
        ).encode()
        # The load test spreads requests over all symbols, one entity per request.
        bodies = [
            json.dumps({"feature_service": SERVICE, "entities": {"symbol": [s]}}).encode()
            for s in syms
        ]
        yaml = str(repo.yaml)
        lean = [FINFEAST, "serve", "--feature-store-yaml", yaml]
        lean += ["--workers", str(args.workers), "--no-serving-logs"]
        servers = {
            "finfeast serve (lean)": lean,
            f"finfeast serve (lean + hot cache {args.cache_ms:g} ms)": [
                *lean,
                "--cache-ms",
                str(args.cache_ms),
            ],
            "finfeast serve --feast-only (tuned workers)": [*lean, "--feast-only"],
        }
        if not args.skip_stock:
            servers["stock feast serve (defaults)"] = [FEAST, "-f", yaml, "serve"]
        http: dict[str, object] = {}
        for name, cmd in servers.items():
            port = free_port()
            if cmd[0] == FEAST:
                cmd = [*cmd, "--port", str(port)]
            else:
                cmd = [*cmd, "--port", str(port)]
            proc = start_server(cmd, port, root / f"server_{port}.log")
            procs.append(proc)
            try:
                seq = http_sequential(port, body_1, body_100, reps)
                load = load_test(port, bodies, args.clients, seconds)
                load["cache_hit_ratio"] = scrape_hit_ratio(port)
            finally:
                stop_server(proc)
                procs.remove(proc)
            http[name] = {"sequential": seq, "load": load}
            print(name, json.dumps(http[name]), flush=True)
        results["http"] = http
    finally:
        for proc in procs:
            stop_server(proc)
        drop_online_keys(repo)
    print(render_markdown(results, args, len(repo.symbols)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def render_markdown(results: dict, args: argparse.Namespace, n_symbols: int) -> str:
    ip = results["in_process"]
    floor100 = ip["floor"]["100"]["p50_ms"]
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: 2 cores, 24 GiB; "
        f"{results['features']} features (real S&P 500 prices, {n_symbols} symbols), Redis 7 on "
        f"loopback; {args.clients} clients x {results['seconds']:g} s load.",
        f" 1-min load average at the end: {os.getloadavg()[0]:.1f} (the 2 cores are shared).",
        "",
        "| path | 1 entity p50 / p99 ms | 100 entities p50 / p99 ms | 100-entity p50 vs floor |",
        "|---|---|---|---|",
    ]
    for name, r in ip.items():
        lines.append(
            f"| {name} | {r['1']['p50_ms']:.3f} / {r['1']['p99_ms']:.3f} | "
            f"{r['100']['p50_ms']:.2f} / {r['100']['p99_ms']:.2f} | "
            f"{r['100']['p50_ms'] / floor100:.2f}x |"
        )
    lines += [
        "",
        "| HTTP server | seq 1 entity p50 / p99 ms | seq 100 entities p50 / p99 ms | "
        f"{args.clients} clients req/s | p50 / p99 ms under load | errors |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results["http"].items():
        s, ld = r["sequential"], r["load"]
        drops = f" ({s['reconnects']} dropped connections)" if s["reconnects"] else ""
        if ld.get("cache_hit_ratio"):
            drops += f" (cache hit ratio {ld['cache_hit_ratio']:.2f})"
        lines.append(
            f"| {name}{drops} | {s['1']['p50_ms']:.2f} / {s['1']['p99_ms']:.2f} | "
            f"{s['100']['p50_ms']:.2f} / {s['100']['p99_ms']:.2f} | {ld['rps']:.0f} | "
            f"{ld['p50_ms']:.2f} / {ld['p99_ms']:.2f} | {ld['errors']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
