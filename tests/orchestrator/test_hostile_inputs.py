"""Security and faults, round 3 (issue 38): inputs a careless user or an attacker gives the CLI — an unusable
FTO_HOME, symlink loops, pipes, FIFOs with no writer, devices, endless lines, absurd hyperparameters, a killed run.
Each is one clear line and a non-zero exit, never a traceback, a hang or unbounded memory. Each failed before."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fto.orchestrator.store import Store
from tests.conftest import ANIMALS, FTO, QUICKSTART, run_fto

COMMANDS = [("status",), ("ls",), ("run", str(QUICKSTART)), ("submit", str(QUICKSTART)), ("compare",),
            ("ui", "--data", str(ANIMALS)), ("store", "info")]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_an_fto_home_under_a_file_is_one_line_naming_it(tmp_path: Path, monkeypatch, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FTO_HOME", str(blocker / "home"))
    monkeypatch.delenv("FTO_STORE", raising=False)
    done = run_fto(*command, timeout=60)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert f"FTO_HOME {blocker / 'home'}" in done.stderr and "set FTO_HOME" in done.stderr


@pytest.mark.parametrize("command", ["validate", "stats", "check"])
def test_data_commands_need_no_writable_fto_home(tmp_path: Path, monkeypatch, command: str):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FTO_HOME", str(blocker / "home"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the encoding's unpacked copy goes here instead
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    done = run_fto("data", command, str(ANIMALS), timeout=120)
    assert done.returncode == 0, done.stderr


def _job_file(tmp_path: Path, train: Path) -> Path:
    job = tmp_path / "job.yaml"
    job.write_text(QUICKSTART.read_text().replace("data/animals.jsonl", str(train)))
    return job


def test_a_symlink_loop_as_the_dataset_is_named_by_fto_run(tmp_path: Path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    done = run_fto("run", str(_job_file(tmp_path, tmp_path / "a")), "--backend", "local", timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "job.yaml:" in done.stderr and "data.train" in done.stderr and "symbolic links" in done.stderr


@pytest.mark.parametrize("command", ["validate", "stats", "check"])
def test_data_from_a_pipe_is_read_once(command: str):
    done = subprocess.run([*FTO, "data", command, "/dev/stdin"], stdin=ANIMALS.open("rb"), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "500 examples" in done.stdout


def test_a_fifo_with_no_writer_is_refused_in_seconds_not_waited_on_forever(tmp_path: Path, monkeypatch):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("FTO_PIPE_WAIT_SECONDS", "1")
    for command in ("validate", "stats", "check"):
        started = time.monotonic()
        done = run_fto("data", command, str(fifo), timeout=30)
        assert done.returncode == 2 and "nothing arrived from the pipe" in done.stderr
        assert time.monotonic() - started < 15
    run = run_fto("run", str(_job_file(tmp_path, fifo)), "--backend", "local", timeout=30)
    assert run.returncode == 2 and "is a pipe (FIFO), not a regular file" in run.stderr


@pytest.mark.parametrize("command", ["validate", "stats", "check"])
def test_a_device_is_refused_by_every_data_command(command: str):
    done = run_fto("data", command, "/dev/zero", timeout=30)
    assert done.returncode == 2 and "/dev/zero: is a device" in done.stderr


def test_fto_run_names_a_device_as_a_device(tmp_path: Path):
    done = run_fto("run", str(_job_file(tmp_path, Path("/dev/zero"))), "--backend", "local", timeout=30)
    assert done.returncode == 2 and "is a device, not a regular file" in done.stderr


def test_stats_of_binary_data_exits_non_zero(tmp_path: Path):
    binary = tmp_path / "b.jsonl"
    binary.write_bytes(b"\x00\x01\x02" * 1000)
    done = run_fto("data", "stats", str(binary), timeout=60)
    assert done.returncode != 0 and "no example could be read" in done.stderr


def test_binary_content_is_found_past_the_first_lines(tmp_path: Path):
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(ANIMALS.read_bytes() + b'{"messages": "\x00\x00\x00"}\n')
    done = run_fto("data", "validate", str(mixed), timeout=60)
    last = len(ANIMALS.read_bytes().splitlines()) + 1
    assert done.returncode == 1 and f"mixed.jsonl:{last}:" in done.stdout and "binary" in done.stdout


def test_a_line_longer_than_the_limit_is_an_error_at_its_number_in_flat_memory(tmp_path: Path):
    long = tmp_path / "long.jsonl"
    with long.open("wb") as out:
        out.write(ANIMALS.read_bytes())
        for _ in range(12):
            out.write(b"x" * 2**24)  # 192 MB with no newline
    script = (
        "import sys\n"
        "from fto.orchestrator.data.validate import validate_file\n"
        f"report = validate_file({str(long)!r}, None)\n"
        "print(report.examples, [f.code for f in report.shown])\n"
        # VmHWM is this process's own peak (ru_maxrss keeps the forking parent's across exec)
        "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    examples, peak = done.stdout.splitlines()
    assert examples.startswith("500 ") and "line_too_long" in examples
    assert int(peak) < 300 * 1024, f"peak {int(peak) // 1024} MB for a 192 MB line"
    checked = run_fto("data", "check", str(long), timeout=120)
    assert checked.returncode == 2 and ":501: line longer than 16 MB" in checked.stderr


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("  epochs: 1000000000000", "hyperparameters.epochs"),
        ("  epochs: true", "hyperparameters.epochs"),
        ("  batch_size: 10000000", "hyperparameters.batch_size"),
        ("  batch_size: 5000", "hyperparameters.batch_size"),  # more than the 425 training examples
        ("  lora: {r: 100000000, alpha: 32}", "hyperparameters.lora.r"),
        ("  learning_rate: yes", "hyperparameters.learning_rate"),
    ],
)
def test_absurd_hyperparameters_are_refused_at_submit_with_file_line_and_field(tmp_path: Path, line: str, field):
    original = QUICKSTART.read_text().replace("data/animals.jsonl", str(ANIMALS))
    key = line.split(":")[0]
    lines = [x for x in original.splitlines() if not x.startswith(key + ":")]
    index = next(i for i, x in enumerate(lines) if x.startswith("hyperparameters:"))
    lines.insert(index + 1, line)
    job = tmp_path / "job.yaml"
    job.write_text("\n".join(lines) + "\n")
    done = run_fto("submit", str(job), "--backend", "local", timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"job.yaml:{index + 2}: {field}" in done.stderr
    assert Store().jobs() == []  # nothing submitted


@pytest.mark.parametrize(
    ("old", "new", "where", "said"),
    [
        ("lora: {r: 16,", "lora: {r: 200,", "job.yaml:13: hyperparameters.lora.r", "the model's width (128)"),
        ("model: embedded:tiny-llama", "model: /no/such/model", "job.yaml:18: backends.local.model", "/no/such/model"),
    ],
)
def test_what_the_local_model_bounds_is_checked_before_anything_is_recorded(tmp_path: Path, old, new, where, said):
    job = tmp_path / "job.yaml"
    job.write_text(QUICKSTART.read_text().replace("data/animals.jsonl", str(ANIMALS)).replace(old, new))
    done = run_fto("submit", str(job), "--backend", "local", timeout=120)
    assert done.returncode == 2 and where in done.stderr and said in done.stderr, done.stderr
    assert Store().jobs() == []


def test_status_finds_a_dead_local_worker_after_run_and_worker_are_killed(tmp_path: Path):
    job = tmp_path / "job.yaml"
    job.write_text(
        QUICKSTART.read_text().replace("data/animals.jsonl", str(ANIMALS)).replace("epochs: 8", "epochs: 200")
    )
    run = subprocess.Popen([*FTO, "run", str(job), "--backend", "local"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=os.environ.copy())  # fmt: skip
    deadline = time.monotonic() + 90
    while not (jobs := [j for j in Store().jobs() if j.status.value == "running"]):
        assert time.monotonic() < deadline, "the job never started running"
        time.sleep(0.3)
    worker = _worker_pid(jobs[0].provider_job_id or "")
    run.kill()
    run.wait()
    os.kill(worker, 9)
    time.sleep(0.5)
    done = run_fto("status", "--json", timeout=60)
    assert '"failed"' in done.stdout and "worker process exited unexpectedly" in done.stdout, done.stdout


def _worker_pid(provider_job_id: str) -> int:
    import json

    from fto.orchestrator.paths import backend_dir

    status = backend_dir("local") / "jobs" / provider_job_id / "status.json"
    return int(json.loads(status.read_text())["pid"])
