"""The translation server under load, on loopback only: not a test, run it by hand.

    python scripts/load.py --checkpoint runs/tf/checkpoints/final.pt --data-root DATA

For each engine (the checkpoint with our search, and its int8 CTranslate2 export) it starts
`mt.serve` twice, with cross-request batching and without (batching=false: one whole request
at a time, the path batching replaced), and sends one-sentence requests (test_2016_flickr
lines in turn) from 1, 8 and 32 concurrent clients, --requests each: requests/s and p50/p99
latency. Then, per server, the head-of-line case: one request of the 64 longest lines at
beam 16, and 0.5 s into it a one-sentence request, whose latency is reported. Bounded in
count and time (every request has a timeout). Prints a markdown table; --json writes it with
the command, commit, CPU and date.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

TIMEOUT_S = 300  # per request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> float:
    """Seconds the request took; raises unless it answered 200."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        response.read()
    return time.perf_counter() - start


class Server:
    """mt.serve on a free loopback port, started and stopped with `with`."""

    def __init__(self, model: Path, threads: int, batching: bool):
        self.port = free_port()
        self.command = [sys.executable, "-m", "mt.serve", f"checkpoint={model}", "device=cpu"]
        self.command += [f"port={self.port}", f"batching={str(batching).lower()}"]
        self.threads = threads
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        environment = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
        self.process = subprocess.Popen(self.command, env=environment, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"error: {' '.join(self.command)} exited")
            try:
                urllib.request.urlopen(self.url + "/health", timeout=5).read()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("error: the server did not start in 120 s") from None
                time.sleep(0.3)

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def clients(url: str, sentences: list[str], count: int, requests: int, beam: int) -> dict:
    """count clients, each sending requests one-sentence requests in a row."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        for r in range(requests):
            sentence = sentences[(k * requests + r) % len(sentences)]
            seconds = post(url + "/translate", {"sentences": [sentence], "beam_size": beam})
            with lock:
                latencies.append(seconds)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(count)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if len(latencies) != count * requests:
        raise SystemExit("error: some requests failed (see the server's output)")
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"requests_per_s": len(latencies) / wall, "p50_s": cuts[49], "p99_s": cuts[98]}


def head_of_line(url: str, sentences: list[str], beam: int) -> dict:
    """A one-sentence request sent 0.5 s into a 64-longest-lines beam-16 request."""
    longest = sorted(sentences, key=len, reverse=True)[:64]
    big: dict = {}

    def large() -> None:
        big["seconds"] = post(url + "/translate", {"sentences": longest, "beam_size": 16})

    thread = threading.Thread(target=large)
    thread.start()
    time.sleep(0.5)
    small = post(url + "/translate", {"sentences": [sentences[0]], "beam_size": beam})
    thread.join()
    return {"small_behind_large_s": small, "large_s": big["seconds"]}


def measure(model: Path, sentences: list[str], args: argparse.Namespace) -> list[dict]:
    rows = []
    for batching in (False, True):
        with Server(model, args.threads, batching) as server:
            post(server.url + "/translate", {"sentences": sentences[:8]})  # warm up
            row = {"batching": batching, "clients": {}}
            for count in args.clients:
                measured = clients(server.url, sentences, count, args.requests, args.beam)
                row["clients"][count] = measured
                print(f"  batching={batching} clients={count}: {row['clients'][count]}", flush=True)
            row.update(head_of_line(server.url, sentences, args.beam))
            rows.append(row)
    return rows


def table(results: dict, counts: list[int]) -> str:
    head = " | ".join(f"{c} clients: req/s, p50, p99 (s)" for c in counts)
    lines = [f"| engine | path | {head} | 1 line behind 64 at beam 16 (s) |"]
    lines.append("|---|---|" + "---|" * len(counts) + "---|")
    for engine, rows in results.items():
        for row in rows:
            cells = [
                f"{m['requests_per_s']:.1f}, {m['p50_s']:.3f}, {m['p99_s']:.3f}"
                for m in (row["clients"][c] for c in counts)
            ]
            path = "batched" if row["batching"] else "one at a time"
            wait = f"{row['small_behind_large_s']:.2f} (the 64: {row['large_s']:.1f})"
            lines.append(f"| {engine} | {path} | {' | '.join(cells)} | {wait} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--src", default="de", help="the checkpoint's source language")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=20, help="per client")
    parser.add_argument("--beam", type=int, default=2, help="of the one-sentence requests")
    parser.add_argument("--threads", type=int, default=2, help="the server's threads")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    source = args.data_root / "multi30k" / f"test_2016_flickr.{args.src}.gz"
    sentences = gzip.open(source, "rt", encoding="utf-8").read().splitlines()
    from mt.deploy.convert import export  # after argparse: --help needs no torch

    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        exported = export(args.checkpoint, Path(scratch) / "int8", quantization="int8")
        for engine, model in (("torch", args.checkpoint), ("ctranslate2 int8", exported)):
            print(f"{engine}:", flush=True)
            results[engine] = measure(model, sentences, args)
    print(table(results, args.clients))
    if args.json:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
        record = {
            "command": " ".join(sys.argv),
            "git_commit": commit.stdout.strip(),
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "results": results,
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
