"""`make bench`: load-test the provider as production serves it, with wrk.

For each backend (SQLite; PostgreSQL + Redis) a throwaway deployment is created and seeded
(bench/backends.py), the WSGI app is served by granian and/or gunicorn with two workers on
127.0.0.1, and wrk (-t2 -c4, Lua scripts in bench/lua/) drives one scenario at a time:
a warm-up, then --runs measured runs of --duration seconds; the median run by requests/s
is reported. Progress goes to stderr; stdout ends with one line per backend and scenario:

    bench <backend> <scenario> rps=<n> p50_ms=<x> p99_ms=<y> errors=<n>

The password_signin scenario also reports, on a `#` line, the CPU cost of one
``hash_password`` (argon2id at the production parameters), the server CPU one sign-in
costs, and the sign-in's latency as a multiple of one hash.

Raw results (every run, wrk's own output, CPU split) go to bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from backends import REDIRECT_URI, Deployment  # bench/ is sys.path[0] when run as a script

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
LUA_DIR = BENCH_DIR / "lua"
RESULTS_DIR = BENCH_DIR / "results"
VENV_BIN = Path(sys.executable).parent

BACKENDS = ("sqlite", "postgres")
SCENARIOS = (
    "client_credentials", "refresh_token", "authorization_code", "introspection",
    "userinfo", "jwks", "discovery", "password_signin",
)
#: Requests/s and p99 the issue asks for (p99 only where it states one).
TARGETS: dict[str, tuple[int, float | None]] = {
    "client_credentials": (1500, 50.0),
    "refresh_token": (600, 50.0),
    "jwks": (5000, None),
    "discovery": (5000, None),
}
#: Refresh chains per wrk thread: one per connection, one for wrk's startup call of
#: request(), and spares.
REFRESH_CHAINS_PER_THREAD = 6
#: Server CPU one password sign-in may cost (the argon2id parameters are chosen for it).
SIGNIN_CPU_BUDGET_MS = 60.0
#: hash_password calls timed for the per-hash CPU figure (the median is reported).
HASH_SAMPLES = 50
#: Sign-ins sent one after another on one connection for the unloaded latency.
SERIAL_SIGNINS = 30
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- wrk ------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """wrk from Debian's packages; installed on first use (we run as root on the bench box)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("wrk is not installed: run `sudo apt-get install -y wrk`")
    log("installing wrk (apt-get install -y wrk) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL, check=True)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=True)
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is still not on PATH after apt-get install")
    return found


# -- CPU accounting: who used the two cores during a run ------------------------------------


def _proc_times() -> dict[int, tuple[str, int, int]]:
    """pid -> (comm, process group, utime+stime ticks) for every process we can read."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1: raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2:].split()
        out[int(entry.name)] = (comm, int(fields[2]), int(fields[11]) + int(fields[12]))
    return out


def _cpu_totals() -> tuple[int, int, int]:
    """(busy, irq+softirq, all) ticks summed over every CPU."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = parts[:8]
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return total - idle - iowait, irq + softirq, total


@dataclass
class CpuSnapshot:
    at: float
    totals: tuple[int, int, int]
    procs: dict[int, tuple[str, int, int]]

    @classmethod
    def take(cls) -> CpuSnapshot:
        return cls(time.monotonic(), _cpu_totals(), _proc_times())


def cpu_split(before: CpuSnapshot, after: CpuSnapshot, server_pgid: int,
              wrk_seconds: float) -> dict[str, Any]:
    """Cores used on average by the server, wrk, the databases, kernel irq and the rest,
    plus each busy server process (with few keep-alive connections one worker may get
    them all: then ``server`` stays near one core while the other idles)."""
    seconds = after.at - before.at
    split = {"server": 0.0, "wrk": wrk_seconds * CLK_TCK, "db": 0.0}
    per_process = []
    for pid, (comm, pgid, ticks) in after.procs.items():
        used = ticks - (before.procs[pid][2] if pid in before.procs else 0)
        if pgid == server_pgid:
            split["server"] += used
            if used / CLK_TCK / seconds >= 0.02:
                per_process.append(round(used / CLK_TCK / seconds, 2))
        elif comm.startswith(("postgres", "redis-server")):
            split["db"] += used
    busy = after.totals[0] - before.totals[0]
    irq = after.totals[1] - before.totals[1]
    result: dict[str, Any] = {k: v / CLK_TCK / seconds for k, v in split.items()}
    result["irq"] = irq / CLK_TCK / seconds
    result["other"] = max(0.0, busy / CLK_TCK / seconds - sum(result.values()))
    result = {k: round(v, 2) for k, v in result.items()}
    # The window the averages are over: cores x seconds is CPU time (per-request cost).
    result["seconds"] = round(seconds, 3)
    result["server_cpu_s"] = round(split["server"] / CLK_TCK, 3)
    result["workers"] = sorted(per_process, reverse=True)
    return result


QUIET_CORES = 0.3


def wait_quiet(limit: float) -> float:
    """Wait (up to ``limit`` s) until the idle server's machine is quiet: other sessions'
    test runs on a shared box would steal the CPU the numbers are about. Returns the cores
    busy in the last second sampled."""
    deadline = time.monotonic() + limit
    while True:
        a = _cpu_totals()
        time.sleep(1.0)
        b = _cpu_totals()
        busy = (b[0] - a[0]) / CLK_TCK
        if busy <= QUIET_CORES or time.monotonic() >= deadline:
            return busy


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# -- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``wsgi:app`` served the production way, in its own process group."""

    def __init__(self, kind: str, port: int, env: dict[str, str], workers: int,
                 gunicorn_worker: str, gunicorn_threads: int, granian_threads: int | None,
                 logdir: Path, app_dir: Path = ROOT) -> None:
        self.kind, self.port = kind, port
        if kind == "granian":
            cmd = [str(VENV_BIN / "granian"), "--interface", "wsgi", "--workers", str(workers),
                   "--host", "127.0.0.1", "--port", str(port), "--no-ws"]
            if granian_threads:
                cmd += ["--blocking-threads", str(granian_threads)]
            cmd.append("wsgi:app")
        else:
            cmd = [str(VENV_BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
                   "-k", gunicorn_worker, "--log-level", "warning"]
            if gunicorn_worker == "gthread":
                cmd += ["--threads", str(gunicorn_threads)]
            cmd.append("wsgi:app")
        if kind == "granian":
            self.label = f"granian-bt{granian_threads}" if granian_threads else "granian"
        else:
            self.label = f"gunicorn-{gunicorn_worker}"
        if app_dir != ROOT:
            self.label += "@" + app_dir.name
        self.cmd = cmd
        base = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
        if app_dir != ROOT:
            # Serve another tree's idp/ + wsgi.py (a candidate change) with this venv.
            base["PYTHONPATH"] = str(app_dir)
        self.logfile = logdir / f"server-{self.label}-{port}.log"
        self._log = open(self.logfile, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=app_dir, env={**base, **env}, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited early:\n{self.logfile.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        # Every worker must be up, not just the first: give them a moment.
                        time.sleep(1.0)
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.label} not ready after {timeout}s:\n"
                           f"{self.logfile.read_text()}")

    def worker_pids(self) -> list[int]:
        return [pid for pid, (_c, pgid, _t) in _proc_times().items()
                if pgid == self.proc.pid and _ppid(pid) == self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Workers left behind by a master that died first.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


def connection_split(server: Server) -> list[int]:
    """Established connections to the server's port held by each worker, busiest first."""
    port = f"{server.port:04X}"
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if f[1].endswith(":" + port) and f[3] == "01":
                    inodes.add(f[9])
    split = []
    for pid in server.worker_pids():
        n = 0
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(fd.path)
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        n += 1
        split.append(n)
    return sorted(split, reverse=True)


def _ppid(pid: int) -> int:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(raw[raw.rindex(")") + 2:].split()[1])


# -- scenario material --------------------------------------------------------------------------


def prepare(dep: Deployment, scenario: str, pool_dir: Path, threads: int,
            amount: int) -> dict[str, str]:
    """Write the pools a scenario consumes; return the environment its Lua script reads."""
    for old in pool_dir.glob("*.txt"):
        old.unlink()
    env = {
        "BENCH_LUA_DIR": str(LUA_DIR),
        "BENCH_POOL_DIR": str(pool_dir),
        "BENCH_BASIC": dep.basic_auth,
        "BENCH_REDIRECT_URI_ENC": urllib.parse.quote(REDIRECT_URI, safe=""),
    }
    if scenario == "authorization_code":
        codes = dep.issue_codes(amount)
        per = math.ceil(len(codes) / threads)
        for i in range(threads):
            (pool_dir / f"authorization_code_{i + 1}.txt").write_text(
                "\n".join(codes[i * per:(i + 1) * per]) + "\n")
    elif scenario == "refresh_token":
        tokens = dep.refresh_tokens(REFRESH_CHAINS_PER_THREAD * threads)
        for i in range(threads):
            chunk = tokens[i * REFRESH_CHAINS_PER_THREAD:(i + 1) * REFRESH_CHAINS_PER_THREAD]
            (pool_dir / f"refresh_token_{i + 1}.txt").write_text("\n".join(chunk) + "\n")
    elif scenario in ("introspection", "userinfo"):
        env["BENCH_ACCESS_TOKEN"] = dep.access_token()
    elif scenario == "password_signin":
        lines = "".join(f"{cookie}\t{body}\n" for cookie, body in dep.signin_requests())
        for i in range(threads):
            (pool_dir / f"password_signin_{i + 1}.txt").write_text(lines)
    return env


def signin_once(conn: http.client.HTTPConnection, cookie: str, body: str) -> None:
    """One ``POST /login`` as wrk sends it; raises unless it is a sign-in (302 /signed-in)."""
    conn.request("POST", "/login", body=body, headers={
        "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    payload = response.read()
    location = response.getheader("Location") or ""
    if response.status != 302 or not location.endswith("/signed-in"):
        raise RuntimeError(f"password_signin: HTTP {response.status} {location!r} "
                           f"{payload[:300]!r}")


def serial_signins(dep: Deployment, url: str, count: int = SERIAL_SIGNINS) -> list[float]:
    """Wall-clock ms of ``count`` sign-ins sent one after another on one keep-alive
    connection: the latency a user sees when nothing queues in front of the request."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    material = dep.signin_requests()
    out = []
    try:
        for i in range(count):
            cookie, body = material[i % len(material)]
            start = time.perf_counter()
            signin_once(conn, cookie, body)
            out.append((time.perf_counter() - start) * 1000)
    finally:
        conn.close()
    return out


def hash_cost(samples: int = HASH_SAMPLES) -> dict[str, Any]:
    """CPU ms of one ``idp.security.hash_password`` at the parameters production uses."""
    from idp import security

    if security._FAST_HASHING:  # the test environment's cheap parameters
        raise RuntimeError("hash_password is in test mode; the figure would be meaningless")
    hasher = security._hasher()
    security.hash_password("warm-up-" + "x" * 12)
    times = []
    for i in range(samples):
        start = time.thread_time()
        security.hash_password(f"Bench-Hash-{i:03d}")
        times.append((time.thread_time() - start) * 1000)
    return {"median_ms": round(statistics.median(times), 2),
            "min_ms": round(min(times), 2), "max_ms": round(max(times), 2),
            "samples": samples, "argon2id": {"time_cost": hasher.time_cost,
                                             "memory_kib": hasher.memory_cost,
                                             "parallelism": hasher.parallelism}}


def probe(dep: Deployment, scenario: str, url: str) -> None:
    """One request of the scenario through urllib: fail loudly before wrk hides the reason."""
    form = "application/x-www-form-urlencoded"
    basic = {"Authorization": dep.basic_auth, "Content-Type": form}
    if scenario == "client_credentials":
        req = ("POST", "/token", basic, {"grant_type": "client_credentials"})
    elif scenario == "refresh_token":
        req = ("POST", "/token", basic, {"grant_type": "refresh_token",
                                         "refresh_token": dep.refresh_tokens(1)[0]})
    elif scenario == "authorization_code":
        req = ("POST", "/token", basic, {"grant_type": "authorization_code",
                                         "code": dep.issue_codes(1)[0],
                                         "redirect_uri": REDIRECT_URI})
    elif scenario == "introspection":
        req = ("POST", "/introspect", basic, {"token": dep.access_token()})
    elif scenario == "userinfo":
        req = ("GET", "/userinfo", {"Authorization": "Bearer " + dep.access_token()}, None)
    elif scenario == "jwks":
        req = ("GET", "/jwks.json", {}, None)
    elif scenario == "discovery":
        req = ("GET", "/.well-known/openid-configuration", {}, None)
    elif scenario == "password_signin":
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=90)
        try:
            signin_once(conn, *dep.signin_requests()[0])
        finally:
            conn.close()
        return
    else:
        raise ValueError(scenario)
    method, path, headers, data = req
    body = urllib.parse.urlencode(data).encode() if data else None
    request = urllib.request.Request(url + path, data=body, headers=headers, method=method)
    try:
        # A generous timeout: a request that hangs on a lock must finish before the next
        # scenario starts, or it would disturb it.
        with urllib.request.urlopen(request, timeout=90) as r:
            payload = json.loads(r.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{scenario}: HTTP {exc.code} {exc.read()[:300]!r}") from None
    if scenario == "introspection" and not payload.get("active"):
        raise RuntimeError(f"introspection: token not active: {payload}")


# -- running wrk ----------------------------------------------------------------------------------


@dataclass
class RunResult:
    scenario: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    detail: dict[str, Any]
    cpu: dict[str, Any]
    load_before: float
    raw: str = field(repr=False, default="")

    @property
    def est_quiet_rps(self) -> float:
        """The rate had the CPU that other processes used gone to the server (CPU-bound
        scenarios on a shared machine); equal to ``rps`` when nothing else ran."""
        c = self.cpu
        server = c.get("server", 0.0)
        if server < 0.05:
            return self.rps
        available = (os.cpu_count() or 2) - c.get("wrk", 0) - c.get("db", 0) - c.get("irq", 0)
        return round(self.rps * max(server, min(server + c.get("other", 0), available))
                     / server, 1)


def run_wrk(wrk: str, server: Server, scenario: str, env: dict[str, str], duration: float,
            threads: int, connections: int, py_spy: Path | None = None,
            py_spy_format: str = "flamegraph") -> RunResult:
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency",
           "-s", str(LUA_DIR / f"{scenario}.lua"), server.url]
    load_before = load_average()
    spies = []
    if py_spy is not None:
        for pid in server.worker_pids():
            ext = {"flamegraph": "svg", "raw": "folded", "speedscope": "json"}[py_spy_format]
            out = py_spy / f"{scenario}-{server.label}-{pid}.{ext}"
            spies.append(subprocess.Popen(
                [str(VENV_BIN / "py-spy"), "record", "--pid", str(pid), "--duration",
                 str(max(1, int(duration))), "--rate", "200", "--format", py_spy_format,
                 "--output", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    before = CpuSnapshot.take()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # Which worker holds which of wrk's keep-alive connections (they stay put).
    split: list[int] = []
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=min(1.0, duration / 3))
    if proc.poll() is None:
        split = connection_split(server)
    stdout, stderr = proc.communicate(timeout=duration + 120)
    after = CpuSnapshot.take()
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (reaped.ru_utime + reaped.ru_stime) - (children.ru_utime + children.ru_stime)
    for spy in spies:
        spy.wait(timeout=duration + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {stderr}\n{stdout}")
    line = next((x for x in stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"no BENCH_JSON line from wrk:\n{stdout}\n{stderr}")
    d = json.loads(line.removeprefix("BENCH_JSON "))
    d["connections_per_worker"] = split
    seconds = d["duration_us"] / 1e6
    errors = d["non2xx"] + d["connect"] + d["read"] + d["write"] + d["timeout"]
    return RunResult(
        scenario=scenario, requests=d["requests"], seconds=round(seconds, 3),
        rps=round(d["requests"] / seconds, 1), p50_ms=d["p50_us"] / 1000,
        p90_ms=d["p90_us"] / 1000, p99_ms=d["p99_us"] / 1000, max_ms=d["max_us"] / 1000,
        errors=errors, detail=d, cpu=cpu_split(before, after, server.proc.pid, wrk_cpu),
        load_before=load_before, raw=stdout,
    )


def pool_size(rate: float, duration: float) -> int:
    """Single-use codes to issue for a run: the fastest rate seen so far, with room for
    wrk threads that run ahead of each other (each has its own half of the pool)."""
    return int(max(rate, 300.0) * 2.5 * duration) + 500


def balanced(r: RunResult, workers: int) -> bool:
    """Did every worker get work? wrk's 4 keep-alive connections are spread over the
    workers by the kernel when they connect, and stay: 4+0 leaves a core idle that no
    production load (many connections) would leave idle."""
    if workers < 2:
        return True
    split = r.detail.get("connections_per_worker") or []
    if len(split) >= workers and sum(split) >= workers:
        # Every worker holds a connection (3+1 measured as fast as 2+2; 4+0 halves it).
        return min(split) >= 1
    # Sync workers close every connection, so the split is empty or changing: by CPU.
    busy = r.cpu.get("workers", [])
    return len(busy) >= workers and min(busy) >= 0.3 * max(busy)


def median_run(runs: list[RunResult]) -> RunResult:
    ordered = sorted(runs, key=lambda r: r.rps)
    return ordered[(len(ordered) - 1) // 2]


@dataclass
class Summary:
    backend: str
    server: str
    scenario: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    runs: list[RunResult]
    warmup: RunResult | None
    #: Why the scenario could not be run (its probe request failed); reported as an error.
    failure: str = ""
    #: Runs repeated because the connections had gone to too few workers.
    discarded: list[RunResult] = field(default_factory=list)
    #: Scenario-specific figures (password_signin: CPU per sign-in, serial latency).
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return (f"bench {self.backend} {self.scenario} rps={round(self.rps)} "
                f"p50_ms={self.p50_ms:.2f} p99_ms={self.p99_ms:.2f} errors={self.errors}")


def bench_scenario(args, wrk: str, dep: Deployment, servers: list[Server], scenario: str,
                   pool_dir: Path) -> list[Summary]:
    """Warm up, then measured runs interleaved across ``servers`` (A B A B ...), so that
    drifting load from other processes hits every server alike."""
    threads, conns = args.threads, args.connections
    failed: dict[str, str] = {}
    warm: dict[str, RunResult | None] = {}
    rate: dict[str, float] = {}
    for server in servers:
        try:
            probe(dep, scenario, server.url)
        except (RuntimeError, OSError) as exc:
            log(f"    [{server.label}] PROBE FAILED, scenario skipped: {exc}")
            failed[server.label] = str(exc)[:2000]
            continue
        # The warm-up also measures the rate, so code pools can be sized for the real runs.
        if args.warmup > 0:
            env = prepare(dep, scenario, pool_dir, threads, amount=int(2500 * args.warmup) + 500)
            warm[server.label] = run_wrk(wrk, server, scenario, env, args.warmup, threads, conns)
            rate[server.label] = warm[server.label].rps
        else:
            warm[server.label], rate[server.label] = None, 2500.0
    live = [srv for srv in servers if srv.label not in failed]
    runs: dict[str, list[RunResult]] = {srv.label: [] for srv in live}
    discarded: dict[str, list[RunResult]] = {srv.label: [] for srv in live}
    for i in range(args.runs):
        for server in live:
            who = f"[{server.label}] " if len(servers) > 1 else ""
            for attempt in range(args.balance_retries + 1):
                amount = pool_size(rate[server.label], args.duration)
                env = prepare(dep, scenario, pool_dir, threads, amount)
                foreign = wait_quiet(args.quiet_wait)
                if foreign > QUIET_CORES:
                    log(f"    warning: {foreign:.2f} cores busy outside the benchmark "
                        "before this run")
                r = run_wrk(wrk, server, scenario, env, args.duration, threads, conns)
                rate[server.label] = max(rate[server.label], r.rps)
                if balanced(r, args.workers) or attempt == args.balance_retries:
                    break
                discarded[server.label].append(r)
                log(f"    {who}run {i + 1}: connections per worker "
                    f"{r.detail['connections_per_worker']}, cpu {r.cpu['workers']} "
                    f"(rps={r.rps:.0f}): uneven, again")
            runs[server.label].append(r)
            note = f" STARVED={r.detail['starved']}" if r.detail["starved"] else ""
            log(f"    {who}run {i + 1}/{args.runs}: rps={r.rps:.0f} p50={r.p50_ms:.2f}ms "
                f"p99={r.p99_ms:.2f}ms errors={r.errors}{note} cpu={r.cpu} "
                f"conns={r.detail['connections_per_worker']} "
                f"load={r.load_before:.2f} est_quiet_rps={r.est_quiet_rps:.0f}")
    if args.py_spy is not None:
        for server in live:
            amount = pool_size(rate[server.label], args.duration)
            env = prepare(dep, scenario, pool_dir, threads, amount)
            r = run_wrk(wrk, server, scenario, env, args.duration, threads, conns,
                        py_spy=args.py_spy, py_spy_format=args.py_spy_format)
            log(f"    [{server.label}] profiled run (not counted): rps={r.rps:.0f}; "
                f"py-spy output in {args.py_spy}")
    out = []
    for server in servers:
        if server.label in failed:
            out.append(Summary(dep.backend, server.label, scenario, 0.0, 0.0, 0.0, 1, [], None,
                               failure=failed[server.label]))
            continue
        got = runs[server.label]
        m = median_run(got)
        extra: dict[str, Any] = {}
        if scenario == "password_signin":
            extra = signin_figures(dep, server, m)
        out.append(Summary(dep.backend, server.label, scenario, m.rps, m.p50_ms, m.p99_ms,
                           sum(r.errors for r in got), got, warm[server.label],
                           discarded=discarded[server.label], extra=extra))
    return out


def signin_figures(dep: Deployment, server: Server, median: RunResult) -> dict[str, Any]:
    """Server CPU per sign-in in the median run, and the latency of sign-ins one at a time."""
    serial = serial_signins(dep, server.url)
    server_cpu_s = median.cpu.get("server_cpu_s", 0.0)
    return {
        "cpu_ms_per_signin": round(server_cpu_s * 1000 / median.requests, 2)
        if median.requests else 0.0,
        "serial_p50_ms": round(statistics.median(serial), 2),
        "serial_ms": [round(x, 2) for x in serial],
    }


def signin_notes(summaries: list[Summary], hashing: dict[str, Any] | None) -> list[str]:
    """The password_signin figures: one hash, CPU per sign-in against its budget, and the
    latency as a multiple of one hash (under wrk's load, and one request at a time)."""
    if not hashing:
        return []
    h = hashing["median_ms"]
    a = hashing["argon2id"]
    notes = [f"# hash_password: {h:.1f} ms CPU (median of {hashing['samples']}; argon2id "
             f"t={a['time_cost']} m={a['memory_kib'] // 1024} MiB p={a['parallelism']})"]
    for s in summaries:
        if s.scenario != "password_signin" or not s.extra:
            continue
        cpu = s.extra["cpu_ms_per_signin"]
        serial = s.extra["serial_p50_ms"]
        ok = 0 < cpu < SIGNIN_CPU_BUDGET_MS and not s.errors
        notes.append(
            f"# password_signin {s.backend}: {cpu:.1f} ms server CPU per sign-in "
            f"= {cpu / h:.2f} hashes (budget < {SIGNIN_CPU_BUDGET_MS:g} ms: "
            f"{'met' if ok else 'MISSED'}); latency p50 {s.p50_ms:.1f} ms under load "
            f"= {s.p50_ms / h:.2f} hashes, {serial:.1f} ms one at a time "
            f"= {serial / h:.2f} hashes")
    return notes


# -- report -----------------------------------------------------------------------------------


def comparison_table(summaries: list[Summary]) -> list[str]:
    """One row per backend and scenario, one column per server: rps p50/p99 (median run),
    and each server's rps relative to the first."""
    by = {(s.backend, s.scenario, s.server): s for s in summaries}
    servers = list(dict.fromkeys(s.server for s in summaries))
    if len(servers) < 2:
        return []
    head = "".join(f"{srv:>26}" for srv in servers)
    rel = "".join(f"{'x ' + srv[:10]:>14}" for srv in servers[1:])
    out = [f"# {' vs '.join(servers)} (median run: rps p50/p99 ms; runs interleaved)",
           f"# {'backend':<9}{'scenario':<20}{head}{rel}"]
    for backend in dict.fromkeys(s.backend for s in summaries):
        for scenario in dict.fromkeys(s.scenario for s in summaries):
            cells = [by.get((backend, scenario, srv)) for srv in servers]
            row = "".join(f"{c.rps:8.0f} {c.p50_ms:7.2f}/{c.p99_ms:7.2f}" if c else f"{'-':>26}"
                          for c in cells)
            base = cells[0].rps if cells[0] else 0
            ratios = "".join(f"{(c.rps / base if c and base else 0):>14.2f}" for c in cells[1:])
            out.append(f"# {backend:<9}{scenario:<20}{row}{ratios}")
    return out


def faster_server(summaries: list[Summary]) -> str:
    """The server with the higher geometric-mean rps over every backend and scenario."""
    servers = list(dict.fromkeys(s.server for s in summaries))
    keys = {(s.backend, s.scenario) for s in summaries}
    by = {(s.backend, s.scenario, s.server): s.rps for s in summaries}
    common = [k for k in keys if all((*k, srv) in by for srv in servers)]
    score = {srv: statistics.geometric_mean([max(by[(*k, srv)], 0.1) for k in common])
             for srv in servers}
    return max(score, key=score.__getitem__)


def target_notes(summaries: list[Summary]) -> list[str]:
    notes = [f"# FAILED {s.backend}/{s.scenario}: {s.failure.splitlines()[0][:300]}"
             for s in summaries if s.failure]
    for s in summaries:
        if s.scenario not in TARGETS:
            continue
        want_rps, want_p99 = TARGETS[s.scenario]
        ok = s.rps >= want_rps and (want_p99 is None or s.p99_ms < want_p99) and not s.errors
        p99 = f", p99 < {want_p99:g} ms" if want_p99 else ""
        est = ""
        if s.runs and not ok:
            quiet = median_run(s.runs).est_quiet_rps
            if quiet > s.rps * 1.1:
                est = f" (other processes took CPU: ~{quiet:.0f}/s on a quiet machine)"
        notes.append(f"# target {s.backend}/{s.scenario}: >= {want_rps}/s{p99}: "
                     f"{'met' if ok else 'MISSED'}{est}")
    return notes


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    p.add_argument("--server", default="granian",
                   help="granian (production default), gunicorn, both (= granian,gunicorn), "
                        "or a comma-separated list of specs granian[:BLOCKING_THREADS] and "
                        "gunicorn[:sync|gthread], each optionally @TREE (see --app-dir), run "
                        "interleaved for a fair comparison")
    p.add_argument("--gunicorn-worker", choices=("sync", "gthread"), default="sync",
                   help="gunicorn worker class (default sync)")
    p.add_argument("--gunicorn-threads", type=int, default=2,
                   help="threads per gunicorn gthread worker")
    p.add_argument("--granian-blocking-threads", type=int, default=None, metavar="N",
                   help="granian --blocking-threads per worker (default: granian's own)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                   help="server worker processes (default: one per core)")
    p.add_argument("--app-dir", type=Path, default=ROOT,
                   help="serve wsgi:app from this tree instead of the checkout (to measure a "
                        "candidate change of idp/; it must keep the same schema)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up (0: none)")
    p.add_argument("--runs", type=int, default=3, help="measured runs; the median is reported")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help=f"comma-separated subset of {','.join(SCENARIOS)}")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (keep 2 to compare)")
    p.add_argument("--connections", type=int, default=4,
                   help="wrk connections (keep 4 to compare)")
    p.add_argument("--quiet-wait", type=float, default=30.0,
                   help="before each measured run, wait up to this many seconds for other "
                        "processes to leave the CPU idle")
    p.add_argument("--balance-retries", type=int, default=2,
                   help="repeat a run (up to N times) whose keep-alive connections landed "
                        "on too few workers, leaving a core idle (0: keep every run)")
    p.add_argument("--redis-db", type=int, default=13,
                   help="Redis database number to use (flushed before and after)")
    p.add_argument("--py-spy", type=Path, default=None, metavar="DIR",
                   help="after the measured runs, one more run per scenario under py-spy "
                        "(flame graphs per worker into DIR; installs py-spy into the venv)")
    p.add_argument("--py-spy-format", choices=("flamegraph", "raw", "speedscope"),
                   default="flamegraph", help="py-spy output: SVG, folded stacks or speedscope")
    args = p.parse_args(argv)
    args.app_dir = args.app_dir.resolve()
    if args.app_dir != ROOT and not (args.app_dir / "wsgi.py").exists():
        p.error(f"--app-dir {args.app_dir} has no wsgi.py")
    args.backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    specs = "granian,gunicorn" if args.server == "both" else args.server
    args.servers = []
    for spec in (x.strip() for x in specs.split(",") if x.strip()):
        spec, _, tree = spec.partition("@")
        app_dir = Path(tree).resolve() if tree else args.app_dir
        kind, _, opt = spec.partition(":")
        if kind == "granian" and (not opt or opt.isdigit()):
            args.servers.append((kind, int(opt) if opt else args.granian_blocking_threads,
                                 app_dir))
        elif kind == "gunicorn" and opt in ("", "sync", "gthread"):
            args.servers.append((kind, opt or args.gunicorn_worker, app_dir))
        else:
            p.error(f"bad --server spec {spec!r}")
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenario_list) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if args.runs < 1 or args.duration <= 0:
        p.error("--runs must be >= 1 and --duration > 0")
    return args


def ensure_py_spy() -> None:
    if not (VENV_BIN / "py-spy").exists():
        log("installing py-spy into the virtualenv ...")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"],
                       check=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = ensure_wrk()
    if args.py_spy is not None:
        ensure_py_spy()
        args.py_spy = args.py_spy.resolve()
        args.py_spy.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    RESULTS_DIR.mkdir(exist_ok=True)
    logdir = Path(tempfile.mkdtemp(prefix="idp-bench-logs-"))
    log(f"bench: backends={args.backends} servers={args.servers} runs={args.runs}x"
        f"{args.duration:g}s warmup={args.warmup:g}s wrk -t{args.threads} -c{args.connections}"
        f" cores={os.cpu_count()} load={load_average():.2f}")
    if load_average() > 0.5:
        log("  warning: the machine is not idle (load average > 0.5); numbers will be low")

    hashing = None
    if "password_signin" in args.scenario_list:
        wait_quiet(args.quiet_wait)
        hashing = hash_cost()
        log(f"hash_password: median {hashing['median_ms']} ms CPU of {hashing['samples']} "
            f"(min {hashing['min_ms']}, max {hashing['max_ms']}) {hashing['argon2id']}")

    summaries: list[Summary] = []
    for backend in args.backends:
        port = free_port()
        dep = Deployment(backend, port, redis_db=args.redis_db)
        log(f"[{backend}] creating and seeding a fresh deployment in {dep.workdir} ...")
        try:
            dep.open()
            pool_dir = dep.workdir / "pools"
            pool_dir.mkdir()
            servers: list[Server] = []
            try:
                for n, (kind, opt, app_dir) in enumerate(args.servers):
                    # The first server gets the issuer's port; any other its own.
                    servers.append(Server(
                        kind, port if n == 0 else free_port(), dep.server_env(), args.workers,
                        opt if kind == "gunicorn" else args.gunicorn_worker,
                        args.gunicorn_threads, opt if kind == "granian" else None,
                        logdir, app_dir))
                for server in servers:
                    server.wait_ready()
                    log(f"[{backend}] {server.label} on {server.url}, workers "
                        f"{server.worker_pids()}")
                for scenario in args.scenario_list:
                    log(f"  [{backend}] {scenario}")
                    for s in bench_scenario(args, wrk, dep, servers, scenario, pool_dir):
                        summaries.append(s)
                        log(f"  {s.line()}" + (f"  ({s.server})" if len(servers) > 1 else ""))
            finally:
                for server in servers:
                    server.stop()
        finally:
            dep.close()

    chosen = args.servers[0] if len(args.servers) == 1 else None
    labels = list(dict.fromkeys(s.server for s in summaries))
    default = labels[0] if chosen else faster_server(summaries)
    table = comparison_table(summaries)
    final = [s.line() for s in summaries if s.server == default]
    notes = target_notes([s for s in summaries if s.server == default])
    notes += signin_notes([s for s in summaries if s.server == default], hashing)

    record = {
        "stamp": stamp,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"cores": os.cpu_count(), "uname": " ".join(os.uname())},
        "git": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip(),
        "reported_server": default,
        "summaries": [
            {**{k: v for k, v in asdict(s).items() if k not in ("runs", "warmup", "discarded")},
             "runs": [asdict(r) | {"est_quiet_rps": r.est_quiet_rps} for r in s.runs],
             "discarded": [asdict(r) for r in s.discarded],
             "warmup": asdict(s.warmup) if s.warmup else None}
            for s in summaries
        ],
        "lines": final,
        "comparison": table,
        "hash_password": hashing,
    }
    out = RESULTS_DIR / f"{stamp}.json"
    out.write_text(json.dumps(record, indent=1, default=str))
    (RESULTS_DIR / f"{stamp}.txt").write_text("\n".join([*table, *notes, *final]) + "\n")
    shutil.rmtree(logdir, ignore_errors=True)
    log(f"raw results: {out}")

    for line in table:
        print(line)
    for line in notes:
        print(line)
    if not chosen:
        print(f"# lines below: {default} (the faster server overall)")
    for line in final:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
