"""The process a `python` grader runs in (started by sandbox.py with `python -I`; imports nothing of fto).

Limits are set before the grader's source runs: address space and CPU time (resource), and an audit hook that
refuses sockets, new processes, native code loading, and opening any file outside Python's own installation and
this process's scratch folder — so a grader reads no key, no FTO_HOME and no network. Then it reads one JSON
request a line — {"sample", "item"} — and answers one JSON line each: {"value"} or {"error"}.
"""

import json
import math
import os
import resource
import sys
import traceback

BLOCKED_EVENTS = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                  "os.forkpty", "ctypes.", "pty.", "os.kill", "os.putenv", "os.unsetenv", "urllib.Request",
                  "http.client.connect", "sys._current_frames", "sys.settrace", "sys.setprofile")  # fmt: skip
BLOCKED_IMPORTS = {"socket", "_socket", "ssl", "_ssl", "subprocess", "_posixsubprocess", "ctypes", "_ctypes",
                   "multiprocessing", "pty", "urllib.request", "http.client", "ftplib", "smtplib"}  # fmt: skip


def _limits(memory_mb: int, cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 1024 * 1024,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _guard(scratch: str, denied: list[str]) -> None:
    readable = tuple({os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                      sys.base_exec_prefix, *[p for p in sys.path if p and os.path.isdir(p)])})  # fmt: skip
    denied_paths = tuple(os.path.realpath(d) + os.sep for d in denied if d)
    scratch_dir = os.path.realpath(scratch) + os.sep

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event == "import" and args and (args[0] in BLOCKED_IMPORTS):
            raise PermissionError(f"the grader sandbox does not allow importing {args[0]}")
        if event.startswith(BLOCKED_EVENTS):
            raise PermissionError(f"the grader sandbox does not allow {event}")
        if event == "open" and args and isinstance(args[0], str | bytes):
            path = os.path.realpath(os.fsdecode(args[0])) + os.sep
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else "r"
            writes = any(flag in mode for flag in "wax+")
            if path.startswith(denied_paths) or not (
                path.startswith(scratch_dir) or (not writes and path.startswith(readable))
            ):
                raise PermissionError(f"the grader sandbox does not allow opening {os.fsdecode(args[0])}")

    sys.addaudithook(hook)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"grade() returned {type(value).__name__}, not a number")
    if not math.isfinite(value):
        raise ValueError(f"grade() returned {value}, not a finite number")
    return float(value)


def main() -> None:
    """Read the configuration line, set the limits, load the grader, answer each request."""
    config = json.loads(sys.stdin.readline())
    os.chdir(config["scratch"])
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w")  # the grader's own prints go nowhere, not into replies
    sys.stdout = sys.stderr
    _limits(config["memory_mb"], config["cpu_seconds"])
    _guard(config["scratch"], config["denied"])
    namespace: dict[str, object] = {"__name__": "grader"}
    try:
        exec(compile(config["source"], "<grader>", "exec"), namespace)  # the user's grader, inside the limits
        grade = namespace["grade"]
        if not callable(grade):
            raise TypeError("`grade` is not a function")
        failure = None
    except BaseException as exc:  # any failure of the source is the grader's error, per sample
        failure = f"the grader's source failed: {type(exc).__name__}: {exc}"
        grade = None
    for line in sys.stdin:
        request = json.loads(line)
        answer: dict[str, float | str]
        try:
            if grade is None:
                raise RuntimeError(failure)
            answer = {"value": _number(grade(request["sample"], request["item"]))}
        except MemoryError:
            answer = {"error": f"ran out of memory (limit {config['memory_mb']} MB)"}
        except RecursionError:
            answer = {"error": "recursion too deep"}
        except BaseException as exc:  # a grader that raises fails this sample only
            where = traceback.extract_tb(exc.__traceback__)
            line_no = next((f" (line {f.lineno})" for f in reversed(where) if f.filename == "<grader>"), "")
            answer = {"error": f"{type(exc).__name__}: {exc}{line_no}"}
        reply.write(json.dumps(answer) + "\n")
        reply.flush()


if __name__ == "__main__":
    main()
