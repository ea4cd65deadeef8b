"""Runs local JAX processes for the multi-process tests, bounded in time.

Every process is a fresh interpreter (this one) on 127.0.0.1 with its own host (CPU)
devices; the processes of one run find each other through JAX's coordinator on a free
port and exchange data over JAX's CPU collectives (gloo). A run that does not finish
within its time limit, or a process that fails (its peers would then wait for it in
a collective), stops every process of the run and fails with their logs.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "multi_process_worker.py"
TIMEOUT_S = 240  # a whole run (a hang stops here); CI runs the module in under 2 minutes
_LOG_TAIL = 3000


def collectives_unavailable():
    """Why JAX's CPU collectives cannot run in this environment, or None."""
    if importlib.util.find_spec("jax") is None:
        return "JAX is not installed"
    import jax

    if "jax_cpu_collectives_implementation" not in jax.config.values:
        return f"JAX {jax.__version__} has no CPU collectives (jax_cpu_collectives_implementation)"
    if not hasattr(jax, "make_array_from_process_local_data"):
        return f"JAX {jax.__version__} has no make_array_from_process_local_data"
    return None


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_env(devices):
    """The environment of one process: the JAX backend on `devices` host devices, and the
    package of this checkout."""
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return env


def run_commands(commands, log_dir, timeout=TIMEOUT_S):
    """Starts every `(argv, env)` of `commands` at once and waits for all of them.

    Returns the paths of their logs (stdout and stderr). Fails (`AssertionError` with
    the logs) when one exits with an error or the run passes `timeout` seconds; the other
    processes are stopped first.
    """
    log_dir = Path(log_dir)
    procs, logs = [], []
    try:
        for k, (argv, env) in enumerate(commands):
            log = open(log_dir / f"process_{k}.log", "w")
            logs.append(log)
            procs.append(
                subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs):
            failed = [p for p in procs if p.returncode not in (None, 0)]
            if failed or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    codes = [p.returncode for p in procs]
    if any(codes):
        tails = "\n".join(
            f"--- process {k} (exit {code}):\n{_tail(log_dir / f'process_{k}.log')}"
            for k, code in enumerate(codes)
        )
        raise AssertionError(f"a process failed or the run passed {timeout} s:\n{tails}")
    return [log_dir / f"process_{k}.log" for k in range(len(procs))]


def run_once(tmp_path_factory, name, produce, timeout=TIMEOUT_S):
    """`produce(folder)` (a JSON-able result) once per test session, also where
    pytest-xdist spreads a module over several workers: the first worker runs it, the
    others wait for its result (or its failure) instead of starting the processes again."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the session's
    folder = root / name
    folder.mkdir(exist_ok=True)
    done, failed = folder / "result.json", folder / "failed.txt"
    try:
        os.close(os.open(folder / "claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:  # another worker runs it
        deadline = time.monotonic() + timeout + 60
        while not (done.exists() or failed.exists()):
            if time.monotonic() > deadline:
                raise AssertionError(f"no result of the run in {folder} from the other pytest worker")
            time.sleep(0.5)
        if failed.exists():
            raise AssertionError(failed.read_text())
        return json.loads(done.read_text())
    try:
        result = produce(folder)
    except BaseException as error:
        failed.write_text(f"the run failed in the other pytest worker: {error}")
        raise
    partial = folder / "result.partial"
    partial.write_text(json.dumps(result))
    partial.rename(done)  # whole, or not there
    return result


def _tail(path):
    text = Path(path).read_text(errors="replace")
    return text[-_LOG_TAIL:]


def load_example():
    """examples/multi_process.py as a module (its `build_model`, its launcher)."""
    spec = importlib.util.spec_from_file_location("multi_process_example", ROOT / "examples" / "multi_process.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_command(*args):
    """The command of examples/multi_process.py (its own launcher), with this checkout's
    package."""
    argv = [sys.executable, str(ROOT / "examples" / "multi_process.py"), *args]
    return argv, process_env(1)


def worker_commands(out_dir, processes, devices, args=()):
    """Commands of one multi-process run of the worker (`processes` x `devices`), and
    the paths of their JSON reports."""
    port = free_port()
    commands, reports = [], []
    for i in range(processes):
        report = Path(out_dir) / f"report_{processes}x{devices}_{i}.json"
        argv = [sys.executable, str(WORKER), "--process-id", str(i), "--processes", str(processes),
                "--devices", str(devices), "--port", str(port), "--out", str(report), *args]
        commands.append((argv, process_env(devices)))
        reports.append(report)
    return commands, reports


def read_reports(paths):
    return [json.loads(Path(p).read_text()) for p in paths]
