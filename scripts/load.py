"""Load from ``wrk``: one generator, written in C, for every server benchmarked.

A load generator in Python spends more CPU per request than the servers it
measures, on the same two cores. ``wrk`` (Debian's package) costs a fraction
of that, and drives every server the same way: ``concurrency`` connections
on one thread, each sending its next request when its answer comes. The Lua
script below cycles through a file of request bodies, one per line, and
prints the run's figures as one JSON line when it ends.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SCRIPT = r"""
local bodies = {}
local sent = 0

function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end

function request()
  sent = sent + 1
  return wrk.format(nil, nil, nil, bodies[(sent % #bodies) + 1])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\n{"requests": %d, "duration_us": %d, "status_errors": %d, ' ..
    '"socket_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write,
    e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class Run:
    """What one wrk run measured."""

    requests: int
    seconds: float
    errors: int  # non-2xx answers, socket errors and timeouts
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return (self.requests - self.errors) / self.seconds if self.seconds else 0.0


def available() -> bool:
    return shutil.which("wrk") is not None


def drive(
    url: str,
    bodies: list[bytes],
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
    timeout_s: float = 30.0,
) -> Run:
    """``concurrency`` connections posting ``bodies`` in turn for ``seconds``."""
    with tempfile.TemporaryDirectory(prefix="eduml-load-") as folder:
        script, lines = Path(folder) / "post.lua", Path(folder) / "bodies.jsonl"
        script.write_text(f'wrk.method = "POST"\n{SCRIPT}')
        lines.write_bytes(b"\n".join(_one_line(body) for body in bodies) + b"\n")
        command = [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={timeout_s:g}s",
            "-s",
            str(script),
        ]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        command += [url, "--", str(lines)]
        output = subprocess.run(
            command, check=True, capture_output=True, text=True
        ).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    return Run(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        errors=figures["status_errors"]
        + figures["socket_errors"]
        + figures["timeouts"],
        p50_ms=figures["p50_us"] / 1000,
        p90_ms=figures["p90_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
    )


def _one_line(body: bytes) -> bytes:
    if b"\n" in body:
        raise ValueError("wrk bodies are read one per line: compact the JSON")
    return body
