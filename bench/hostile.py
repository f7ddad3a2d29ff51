"""Hostile inputs, each measured: is it refused with a clear error, in bounded memory and
time? Prints one JSON line.

    .venv/bin/python bench/hostile.py
    .venv/bin/python bench/hostile.py --bomb-gb 4     # bigger bombs

HTTP cases go to a real `ridgeline serve` (one worker, default limits): the peak RSS of
the server process tree while the request runs is sampled every 10 ms and reported
as growth over its RSS before. CLI cases run the real `ridgeline` command in a child
process whose peak RSS is sampled the same way. The anchors, measured in the same run,
are a benign request of each kind (a lookup, a small upload, a small intake, a small
import, a scan of one file): a hostile case should cost about what its anchor costs.

Every case records what came back (HTTP status and error code, or exit status and the
first line of the message), the seconds it took and the peak RSS, and `refused`:
whether it was turned away the documented way (a 4xx with an error code / exit 1 or 2
with a message, or for slowloris the connection closed by the server).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

EXE = str(Path(sys.executable).parent / "ridgeline")
MB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Peak:
    """Samples the RSS of a process tree every 10 ms while in use."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        total = 0
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.01)

    def __enter__(self) -> Peak:
        self.before = self.rss()
        self.peak = self.before
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------- hostile payloads (made here)


def png_bomb(side: int) -> bytes:
    """A side x side 8-bit grey PNG of zeros: a few hundred KB that decode to side² bytes."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    parts = [comp.compress(row) for _ in range(side)]
    idat = b"".join(parts) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def zip_bomb(path: Path, member: str, gigabytes: float) -> None:
    """One deflated member of `gigabytes` zeros (about 1 MB per GB compressed)."""
    block = b"\x00" * (16 * MB)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf,
        zf.open(member, "w", force_zip64=True) as fh,
    ):
        for _ in range(int(gigabytes * 64)):
            fh.write(block)


def billion_laughs(encoding: str = "utf-8") -> bytes:
    ents = ['<!ENTITY a0 "ha">'] + [
        f'<!ENTITY a{i} "{"".join(f"&a{i - 1};" for _ in range(10))}">' for i in range(1, 10)
    ]
    doc = (
        f'<?xml version="1.0" encoding="{encoding.upper()}"?>\n<!DOCTYPE queryResult [\n'
        + "\n".join(ents)
        + "\n]>\n<queryResult><images><image><md5>&a9;</md5></image></images></queryResult>"
    )
    return doc.encode(encoding)


def xxe(root: str = "queryResult") -> bytes:
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        f"<{root}>&x;</{root}>"
    ).encode()


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def intake_doc(extra: str = "") -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import random

    from ridgeline.intake import synthetic

    doc = synthetic.report_json(1, synthetic.Population(reports=10), random.Random(1))
    doc["report"]["additionalInfo"] = f"hostile bench {extra or time.time_ns()}"
    return doc


def small_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


# ---------------------------------------------------------------- runners


def http_case(
    name: str, pid: int, call: Callable[[], httpx.Response], anchor: bool = False
) -> dict[str, Any]:
    t0 = time.perf_counter()
    with Peak(pid) as peak:
        try:
            res = call()
            status: int | str = res.status_code
            try:
                code = res.json().get("error", {}).get("code") or res.json().get("status")
            except ValueError:
                code = res.text[:80]
        except httpx.HTTPError as exc:
            status, code = "closed", type(exc).__name__
    seconds = time.perf_counter() - t0
    refused = isinstance(status, int) and 400 <= status < 500 and bool(code)
    return {
        "case": name,
        "channel": "http",
        "status": status,
        "code": code,
        "seconds": round(seconds, 3),
        "rss_growth_mb": round((peak.peak - peak.before) / MB, 1),
        **({"anchor": True} if anchor else {"refused": refused}),
    }


def cli_case(name: str, args: list[str], anchor: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([EXE, *args], stdout=out, stderr=err)
        peak = 0
        try:
            p = psutil.Process(proc.pid)
            while proc.poll() is None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    peak = max(peak, sum(c.memory_info().rss for c in [p, *p.children(True)]))
                time.sleep(0.01)
        except psutil.NoSuchProcess:
            pass
        rc = proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    seconds = time.perf_counter() - t0
    message = (stderr.strip() or stdout.strip()).splitlines()
    refused = rc in (1, 2) and bool(message) and "Traceback" not in stderr
    return {
        "case": name,
        "channel": "cli",
        "exit": rc,
        "message": (message[0] if message else "")[:160],
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak / MB, 1),
        **({"anchor": True} if anchor else {"refused": refused}),
    }


def raw(port: int, request: bytes) -> httpx.Response:
    """Send bytes no HTTP client would, read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    if not data.startswith(b"HTTP/1.1 "):
        raise httpx.RemoteProtocolError(f"closed without an answer ({len(data)} bytes)")
    head, _, body = data.partition(b"\r\n\r\n")
    return httpx.Response(int(head.split()[1]), content=body)


def slowloris(port: int, pid: int, connections: int, base: str, key: str) -> dict[str, Any]:
    """`connections` sockets that send a header byte every 0.5 s; meanwhile lookups."""
    socks = []
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setblocking(False)
        socks.append(s)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000
    t0 = time.monotonic()
    closed_at: dict[int, float] = {}
    latencies = []
    with Peak(pid) as peak, httpx.Client(base_url=base, headers={"X-API-Key": key}) as client:
        sent = 0
        while len(closed_at) < connections and time.monotonic() - t0 < 60:
            for i, s in enumerate(socks):
                if i in closed_at:
                    continue
                readable, _, _ = select.select([s], [], [], 0)
                gone = False
                if readable:
                    try:
                        gone = not s.recv(4096)
                    except (ConnectionResetError, BlockingIOError):
                        gone = True
                if not gone and sent < len(head):
                    try:
                        s.send(head[sent : sent + 1])
                    except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                        gone = True
                if gone:
                    closed_at[i] = time.monotonic() - t0
            sent += 1
            q0 = time.perf_counter()
            client.get("/v1/lookup", params={"signal": "md5", "value": "0" * 32})
            latencies.append(time.perf_counter() - q0)
            time.sleep(0.5)
    for s in socks:
        s.close()
    latencies.sort()
    return {
        "case": f"slowloris_{connections}_connections",
        "channel": "http",
        "closed": len(closed_at),
        "last_closed_s": round(max(closed_at.values()), 1) if closed_at else None,
        "lookup_p99_ms_meanwhile": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1)
        if latencies
        else None,
        "rss_growth_mb": round((peak.peak - peak.before) / MB, 1),
        "refused": len(closed_at) == connections,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bomb-gb", type=float, default=1.0)
    ap.add_argument("--slow-connections", type=int, default=200)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ridgeline-hostile-"))
    db = str(work / "hostile.db")
    subprocess.run([EXE, "db", "init", "--db", db], check=True, capture_output=True)
    keys = {}
    for role in ("provider", "intake", "admin"):
        out = subprocess.run(
            [EXE, "keys", "create", "--role", role, "--db", db, "--format", "json",
             "--rate-limit", "100000"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        keys[role] = json.loads(out)["key"]
    subprocess.run([EXE, "lists", "create", "known", "--db", db], check=True, capture_output=True)

    # ------------------------------------------------ files for the CLI cases
    bomb = work / "bomb.zip"
    zip_bomb(bomb, "reports.jsonl", args.bomb_gb)
    bomb_xml = work / "bomb-xml.zip"
    zip_bomb(bomb_xml, "report.xml", args.bomb_gb)
    scan_dir = work / "scan"
    scan_dir.mkdir()
    (scan_dir / "bomb.zip").write_bytes(bomb.read_bytes())
    benign_dir = work / "benign"
    benign_dir.mkdir()
    (benign_dir / "a.png").write_bytes(small_png())
    traversal = work / "traversal.zip"
    with zipfile.ZipFile(traversal, "w") as zf:
        zf.writestr("../../../tmp/ridgeline-escaped.xml", b"<report/>")
        zf.writestr("/etc/ridgeline-abs.json", b"{}")
    (work / "laughs.xml").write_bytes(billion_laughs())
    (work / "laughs16.xml").write_bytes(billion_laughs("utf-16"))
    (work / "xxe.xml").write_bytes(xxe())
    good = hashlib.md5(b"x").hexdigest()
    (work / "deep.jsonl").write_bytes(
        b'{"signal": "md5", "hash": "' + good.encode() + b'", "note": '
        + deep_json(200_000) + b"}\n" + b'{"signal": "md5", "hash": "' + b"1" * 32
        + b'"}\n'
    )  # fmt: skip
    (work / "bigint.jsonl").write_bytes(
        b'{"signal": "md5", "hash": "' + good.encode() + b'", "quality": 1' + b"0" * 100_000
        + b"}\n"
    )  # fmt: skip
    (work / "badutf8.csv").write_bytes(b"signal,hash\nmd5," + b"\xff\xfe" * 10 + b"\n")
    (work / "longid.csv").write_bytes(
        b"signal,hash,id\nmd5," + good.encode() + b"," + b"i" * (8 * MB) + b"\n"
    )
    (work / "benign.csv").write_bytes(
        b"signal,hash\n"
        + b"".join(
            f"md5,{hashlib.md5(str(i).encode()).hexdigest()}\n".encode() for i in range(1000)
        )
    )
    (work / "unterminated.csv").write_bytes(
        b"signal,hash,note\nmd5," + good.encode() + b',"open quote\n' + b"md5,%s,x\n" % (b"2" * 32)
    )
    (work / "bomb.png").write_bytes(png_bomb(20_000))
    (work / "benign.jsonl").write_bytes(json.dumps(intake_doc("cli-anchor")).encode() + b"\n")

    cli: list[dict[str, Any]] = []

    def run_cli(name: str, *a: str, anchor: bool = False) -> None:
        cli.append(cli_case(name, list(a), anchor))

    run_cli("anchor_import_1000_csv", "lists", "import", "known", str(work / "benign.csv"),
            "--db", db, anchor=True)  # fmt: skip
    run_cli("anchor_intake_one_report", "reports", "intake", str(work / "benign.jsonl"),
            "--db", db, anchor=True)  # fmt: skip
    run_cli("anchor_scan_one_image", "scan", str(benign_dir), "--db", db, anchor=True)
    run_cli("anchor_hash_one_image", "hash", str(benign_dir / "a.png"), anchor=True)
    run_cli(f"zip_bomb_{args.bomb_gb:g}gb_jsonl_intake", "reports", "intake", str(bomb),
            "--db", db)  # fmt: skip
    run_cli(f"zip_bomb_{args.bomb_gb:g}gb_xml_intake", "reports", "intake", str(bomb_xml),
            "--db", db)  # fmt: skip
    run_cli(f"zip_bomb_{args.bomb_gb:g}gb_scan", "scan", str(scan_dir), "--db", db)
    run_cli("zip_path_traversal_intake", "reports", "intake", str(traversal), "--db", db)
    run_cli("billion_laughs_ncmec_import", "lists", "import", "known", str(work / "laughs.xml"),
            "--format", "ncmec-xml", "--db", db)  # fmt: skip
    run_cli("billion_laughs_utf16_ncmec_import", "lists", "import", "known",
            str(work / "laughs16.xml"), "--format", "ncmec-xml", "--db", db)  # fmt: skip
    run_cli("xxe_ncmec_import", "lists", "import", "known", str(work / "xxe.xml"),
            "--format", "ncmec-xml", "--db", db)  # fmt: skip
    run_cli("billion_laughs_intake", "reports", "intake", str(work / "laughs.xml"), "--db", db)
    run_cli("deep_nesting_200k_jsonl_import", "lists", "import", "known",
            str(work / "deep.jsonl"), "--db", db)  # fmt: skip
    run_cli("huge_integer_100k_digits_jsonl_import", "lists", "import", "known",
            str(work / "bigint.jsonl"), "--db", db)  # fmt: skip
    run_cli("invalid_utf8_csv_import", "lists", "import", "known", str(work / "badutf8.csv"),
            "--db", db)  # fmt: skip
    run_cli("oversized_8mb_id_csv_import", "lists", "import", "known", str(work / "longid.csv"),
            "--db", db)  # fmt: skip
    run_cli("unterminated_quote_csv_import", "lists", "import", "known",
            str(work / "unterminated.csv"), "--db", db)  # fmt: skip
    run_cli("dev_zero_import", "lists", "import", "known", "/dev/zero", "--signal", "md5",
            "--format", "txt", "--db", db)  # fmt: skip
    run_cli("png_bomb_20000x20000_hash", "hash", str(work / "bomb.png"))

    # ------------------------------------------------ HTTP cases
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(work / "serve.log", "wb")  # noqa: SIM115
    serve = subprocess.Popen(
        [EXE, "serve", "--port", str(port), "--db", db, "--no-access-log"],
        stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
    )  # fmt: skip
    http: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert serve.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        c = httpx.Client(base_url=base, timeout=60)
        prov = {"X-API-Key": keys["provider"]}
        intake = {"X-API-Key": keys["intake"]}
        pid = serve.pid

        def case(name: str, call: Callable[[], httpx.Response], anchor: bool = False) -> None:
            http.append(http_case(name, pid, call, anchor))

        case("anchor_lookup", lambda: c.get("/v1/lookup", params={"signal": "md5",
             "value": good}, headers=prov), anchor=True)  # fmt: skip
        case("anchor_upload_small_png", lambda: c.post("/v1/hash", files={"file": (
             "a.png", small_png())}, headers=prov), anchor=True)  # fmt: skip
        case("anchor_intake_one_report", lambda: c.post("/v1/intake", json=intake_doc("http"),
             headers=intake), anchor=True)  # fmt: skip
        bomb_png = (work / "bomb.png").read_bytes()
        case("png_bomb_20000x20000_upload", lambda: c.post("/v1/hash", files={"file": (
             "b.png", bomb_png)}, headers=prov))  # fmt: skip
        case("deep_nesting_50k_json_match", lambda: c.post("/v1/match", content=deep_json(50_000),
             headers={**prov, "Content-Type": "application/json"}))  # fmt: skip
        case(
            "deep_nesting_50k_json_intake",
            lambda: c.post(
                "/v1/intake",
                content=deep_json(50_000),
                headers={**intake, "Content-Type": "application/json"},
            ),
        )
        query = "/v1/lookup?signal=md5&value=" + "a" * MB
        case(
            "huge_query_string_1mb",
            lambda: raw(
                port,
                f"GET {query} HTTP/1.1\r\nHost: x\r\n"
                f"X-API-Key: {keys['provider']}\r\nConnection: close\r\n\r\n".encode(),
            ),
        )
        case(
            "huge_header_1mb",
            lambda: raw(
                port,
                f"GET /v1/lookup?signal=md5&value={good} "
                f"HTTP/1.1\r\nHost: x\r\nX-API-Key: {keys['provider']}\r\nX-Big: {'a' * MB}"
                "\r\nConnection: close\r\n\r\n".encode(),
            ),
        )
        case("invalid_utf8_json_match", lambda: c.post("/v1/match",
             content=b'{"signals": {"md5": ["\xff\xfe"]}}',
             headers={**prov, "Content-Type": "application/json"}))  # fmt: skip
        case("xxe_intake_xml", lambda: c.post("/v1/intake", content=xxe("report"),
             headers={**intake, "Content-Type": "application/xml"}))  # fmt: skip
        case("billion_laughs_utf16_intake_xml", lambda: c.post("/v1/intake",
             content=billion_laughs("utf-16"), headers={**intake,
             "Content-Type": "application/xml"}))  # fmt: skip
        big = intake_doc("big")
        big["report"]["additionalInfo"] = "x" * (3 * MB)
        case("oversized_3mb_field_intake", lambda: c.post("/v1/intake", json=big,
             headers=intake))  # fmt: skip
        case("body_over_cap_60mb_upload", lambda: c.post("/v1/hash", files={"file": (
             "z.bin", b"\x00" * (60 * MB))}, headers=prov))  # fmt: skip
        case("huge_json_number_match", lambda: c.post("/v1/match", content=b'{"signals": '
             b'{"md5": ["' + good.encode() + b'"]}, "max_distance": 1' + b"0" * 100_000 + b"}",
             headers={**prov, "Content-Type": "application/json"}))  # fmt: skip
        case("id_past_2_63_path", lambda: c.get("/v1/entries/" + "9" * 40, headers={
             "X-API-Key": keys["admin"]}))  # fmt: skip
        http.append(slowloris(port, pid, args.slow_connections, base, keys["provider"]))
        c.close()
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=30)
        log.close()
    cases = cli + http
    hostile = [x for x in cases if not x.get("anchor")]
    print(
        json.dumps(
            {
                "bench": "hostile",
                "cases": cases,
                "hostile_cases": len(hostile),
                "refused": sum(1 for x in hostile if x["refused"]),
                "not_refused": [x["case"] for x in hostile if not x["refused"]],
                "max_cli_peak_rss_mb": max(x["peak_rss_mb"] for x in cli if not x.get("anchor")),
                "max_cli_anchor_rss_mb": max(x["peak_rss_mb"] for x in cli if x.get("anchor")),
                "max_http_rss_growth_mb": max(
                    x["rss_growth_mb"] for x in hostile if x["channel"] == "http"
                ),
                "max_seconds": max(x.get("seconds", 0) for x in hostile),
                "loadavg": [round(v, 2) for v in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
