"""The state behind `fto serve`'s Tinker API: sessions, training models (each an fto job), futures, samplers.

Every training model is a LocalLoop (backends/local/loop.py) and an fto job in the one Store, backend `local`: its
folder under the local backend's root holds its status, events and metrics as a local worker's would, and the
server holds the folder's worker lock while the model lives. So `fto status`, `fto logs`, `fto ui` and `fto
cancel` see a session as they see any job; a crashed server shows as a failed job, and loading a saved state
(tinker://JOB/weights/NAME) reopens that job and goes on with its step count and curves.

Requests of one model run in the order of their seq_id, each in its own thread, as Tinker orders them; their
results wait in futures that retrieve_future hands out.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fto.loop import Adam, Output, SamplingParams

MAX_FUTURES = 10_000  # results kept for retrieve_future; the oldest go first
TURN_SECONDS = 30.0  # how long a request waits for a missing earlier seq_id before it runs anyway
NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")  # names of saved states and jobs in tinker:// paths


class UserError(ValueError):
    """The request is wrong (a 400 or, as a future's result, category `user`)."""


class Missing(LookupError):
    """A session, model, sampler or path that does not exist (404)."""


@dataclass
class Result:
    """A finished request: JSON (a dict), protobuf (bytes), or an error with its category."""

    json: dict[str, Any] | None = None
    proto: bytes | None = None
    error: str | None = None
    category: str = "user"


@dataclass
class TrainedModel:
    model_id: str
    job_id: str
    base_model: str
    rank: int
    loop: Any  # LocalLoop
    folder: Any  # JobFolder
    lock_fd: int
    next_seq: int = 1
    turn: threading.Condition = field(default_factory=threading.Condition)
    loss_sum: float = 0.0  # since the last optim_step
    tokens: int = 0
    started: float = field(default_factory=time.perf_counter)


class TinkerService:
    """Sessions and their models, over the local trainer; one per `fto serve`."""

    def __init__(self, root: Path, base_models: list[str], engine: Callable[[], Any]):
        self.root = root / "tinker"
        self.base_models = base_models
        self.engine = engine  # the server's continuous-batching engine (shared with its OpenAI routes)
        self.sessions: dict[str, dict[str, Any]] = {}
        self.models: dict[str, TrainedModel] = {}
        self.samplers: dict[str, str] = {}  # sampling session id → model folder
        self.futures: OrderedDict[str, Future[Result]] = OrderedDict()
        self.lock = threading.Lock()
        self._store: Any = None

    @property
    def store(self) -> Any:
        if self._store is None:
            from fto.orchestrator.store import Store

            self._store = Store()
        return self._store

    # sessions ----------------------------------------------------------------------------------------------

    def create_session(self, tags: list[str], metadata: dict[str, Any] | None) -> str:
        """A new session's id."""
        session_id = f"fto-{secrets.token_hex(8)}"
        with self.lock:
            self.sessions[session_id] = {"tags": tags, "metadata": metadata or {}, "seen": time.time()}
        return session_id

    def heartbeat(self, session_id: str) -> None:
        """The session is alive (Missing when it is not this server's)."""
        self._session(session_id)["seen"] = time.time()

    def _session(self, session_id: str) -> dict[str, Any]:
        found = self.sessions.get(session_id)
        if found is None:
            raise Missing(f"session {session_id!r} does not exist (sessions end when fto serve restarts)")
        return found

    def model(self, model_id: str) -> TrainedModel:
        """A training model by id (Missing when there is none)."""
        found = self.models.get(model_id)
        if found is None:
            raise Missing(f"model {model_id!r} does not exist in this server")
        return found

    # futures -----------------------------------------------------------------------------------------------

    def submit(self, work: Callable[[], Result], model: TrainedModel | None = None, seq_id: int | None = None) -> str:
        """Run `work` in its own thread (in seq_id order within `model`); returns the request id of its future."""
        request_id = f"req-{secrets.token_hex(10)}"
        future: Future[Result] = Future()
        with self.lock:
            self.futures[request_id] = future
            while len(self.futures) > MAX_FUTURES:
                self.futures.popitem(last=False)

        def run() -> None:
            if model is not None and seq_id:
                with model.turn:  # Tinker's order: seq_id n runs after n - 1 (a lost one holds it up for a while)
                    model.turn.wait_for(lambda: model.next_seq >= seq_id, timeout=TURN_SECONDS)
            try:
                future.set_result(work())
            except (UserError, Missing, ValueError) as exc:
                future.set_result(Result(error=str(exc), category="user"))
            except Exception as exc:  # the server's fault: said as such, the model stays usable
                future.set_result(Result(error=f"{type(exc).__name__}: {exc}", category="server"))
            finally:
                if model is not None and seq_id:
                    with model.turn:
                        model.next_seq = max(model.next_seq, seq_id + 1)
                        model.turn.notify_all()

        threading.Thread(target=run, name=f"tinker-{request_id}", daemon=True).start()
        return request_id

    def pass_turn(self, model: TrainedModel, seq_id: int) -> None:
        """A refused request gives up its place in the model's order."""
        self.submit(lambda: Result(error="refused", category="user"), model, seq_id)

    def future(self, request_id: str) -> Future[Result]:
        """A request's future by id (Missing when there is none, or it was dropped)."""
        found = self.futures.get(request_id)
        if found is None:
            raise Missing(f"request {request_id!r} does not exist (or its result was dropped)")
        return found

    # models ------------------------------------------------------------------------------------------------

    def check_model(self, session_id: str, base_model: str, rank: int) -> None:
        """A create_model request's mistakes, found before anything is built (a 4xx)."""
        self._session(session_id)
        self.check_base(base_model)
        if not 1 <= rank <= 256:
            raise UserError(f"lora rank must be between 1 and 256 (got {rank})")

    def check_base(self, base_model: str) -> None:
        """Only the models `fto serve --model` offers (a request never names a folder of the server's)."""
        if base_model not in self.base_models:
            raise UserError(f"base model {base_model!r} is not offered here; offered: {', '.join(self.base_models)}")

    def build(self, model_id: str, base_model: str, rank: int, seed: int, parts: tuple[bool, bool, bool],
              job_id: str | None = None) -> TrainedModel:  # fmt: skip
        """The model's LocalLoop and its fto job (a new one, or `job_id` reopened)."""
        from fto.backends.local.loop import LocalLoop, base_folder

        folder_path, embedded = base_folder(base_model, self.root / "base")
        job_id = job_id or self._new_job(model_id, base_model, rank)
        loop = LocalLoop(folder_path, embedded=embedded, rank=rank, seed=seed, state_root=self.root / "runs" / job_id,
                         train_attn=parts[0], train_mlp=parts[1], train_unembed=parts[2])  # fmt: skip
        job_folder, fd = self._hold(job_id, base_model, rank, seed, parts)
        trained = TrainedModel(model_id, job_id, base_model, rank, loop, job_folder, fd)
        with self.lock:
            self.models[model_id] = trained
        return trained

    def _new_job(self, model_id: str, base_model: str, rank: int) -> str:
        from fto.schemas import DataSpec, JobSpec
        from fto.schemas.job_spec import BackendSection

        spec = JobSpec(
            name="tinker-loop",
            data=DataSpec(train=f"tinker:{model_id}", validation=None),
            backends={"local": BackendSection(model=base_model)},
            eval=None,
            metadata={"loop": "tinker", "model_id": model_id, "lora_rank": str(rank)},
        )
        _, jobs = self.store.create_experiment(spec, None, ["local"])
        return str(jobs[0].id)

    def _hold(
        self, job_id: str, base_model: str, rank: int, seed: int, parts: tuple[bool, bool, bool]
    ) -> tuple[Any, int]:
        """The job's folder written as a local worker's, its worker lock held by this server; the Store told."""
        from fto.backends.local.folder import JobFolder
        from fto.orchestrator.paths import backend_dir
        from fto.schemas import JobStatus, ProviderJob

        folder = JobFolder(backend_dir("local") / "jobs" / job_id)
        folder.path.mkdir(parents=True, exist_ok=True)
        if not folder.config.exists():
            config = {"loop": {"base_model": base_model, "rank": rank, "seed": seed, "parts": parts},
                      "options": {"model": base_model}}  # fmt: skip
            folder.config.write_text(json.dumps(config))
        fd = os.open(folder.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"job {job_id} is being trained by another client right now") from None
        folder.cancel_file.unlink(missing_ok=True)
        folder.write_status(JobStatus.RUNNING, base_model=base_model, error=None)
        folder.event(f"training loop over the Tinker API: LoRA rank {rank} on {base_model}")
        self.store.set_submitted(job_id, job_id)
        self.store.reopen(job_id)
        self.store.update_from_provider(job_id, ProviderJob(status=JobStatus.RUNNING, base_model=base_model))
        return folder, fd

    def live(self, model: TrainedModel) -> None:
        """A cancelled job (`fto cancel`) takes no more steps."""
        if model.folder.cancel_file.exists():
            raise UserError(f"job {model.job_id} was cancelled (fto cancel); load a saved state to go on")

    # steps -------------------------------------------------------------------------------------------------

    def forward_backward(self, model: TrainedModel, data: list[Any], loss_fn: str, config: dict[str, float],
                         forward_only: bool) -> Output:  # fmt: skip
        """The step's gradients (or, forward_only, just the log-probabilities)."""
        self.live(model)
        if forward_only:
            return model.loop.forward(data, loss_fn)
        out = model.loop.forward_backward(data, loss_fn, config)
        model.loss_sum += out.metrics["loss:sum"]
        model.tokens += sum(len(d.tokens) for d in data)
        return out

    def optim_step(self, model: TrainedModel, adam: Adam) -> dict[str, float]:
        """One Adam step, and the job's metric for it."""
        from fto.schemas import Metric

        self.live(model)
        stats = model.loop.optim_step(adam)
        elapsed = max(time.perf_counter() - model.started, 1e-9)
        model.folder.metric(
            Metric(step=model.loop.steps, loss=round(model.loss_sum, 6), learning_rate=adam.learning_rate,
                   grad_norm=round(stats["grad_norm"], 6), tokens_per_second=round(model.tokens / elapsed, 1))
        )  # fmt: skip
        model.loss_sum, model.tokens, model.started = 0.0, 0, time.perf_counter()
        return stats

    def sample(self, folder: str, prompt: list[int], count: int, params: SamplingParams) -> list[Any]:
        """Samples of `prompt` from the model in `folder`, through the engine."""
        from fto.backends.local.loop import LoopError, collect

        if count < 1 or count > 256:
            raise UserError(f"num_samples must be between 1 and 256 (got {count})")
        try:
            return collect(self.engine(), folder, prompt, count, params)
        except LoopError as exc:
            raise UserError(str(exc)) from None

    # paths -------------------------------------------------------------------------------------------------

    def save_state(self, model: TrainedModel, name: str | None) -> str:
        """The model's state saved under a plain name; returns its tinker:// path."""
        name = valid_name(name) or f"step-{model.loop.steps:06d}"
        model.loop.save_state(name)
        path = f"tinker://{model.job_id}/weights/{name}"
        model.folder.event(f"saved state {path} at step {model.loop.steps}", checkpoint=path, step=model.loop.steps)
        return path

    def save_for_sampler(self, model: TrainedModel, name: str | None) -> tuple[str, str]:
        """Returns the tinker path and the folder of the saved adapter."""
        name = valid_name(name) or f"sampler-{model.loop.steps:06d}-{secrets.token_hex(3)}"
        folder = model.loop.save_weights_for_sampler(name)
        path = f"tinker://{model.job_id}/sampler_weights/{name}"
        model.folder.write_status(_running(), fine_tuned_model=folder)
        model.folder.event(f"saved weights for sampling {path} at step {model.loop.steps}", model=folder)
        return path, folder

    def resolve(self, path: str, kind: str) -> tuple[str, Path]:
        """A tinker:// path of this server as (job id, folder); `kind`: weights or sampler_weights."""
        parts = path.removeprefix("tinker://").split("/") if path.startswith("tinker://") else []
        if len(parts) != 3 or parts[1] != kind or not all(NAME.fullmatch(p) for p in (parts[0], parts[2])):
            raise UserError(f"{path!r} is not a tinker://RUN/{kind}/NAME path")
        folder = self.root / "runs" / parts[0] / ("state" if kind == "weights" else "sampler") / parts[2]
        if not folder.is_dir():
            raise Missing(f"no saved {kind.replace('_', ' ')} at {path}")
        return parts[0], folder

    def new_sampler(self, folder: str) -> str:
        """A sampling session over `folder`."""
        sampler_id = f"sampler-{secrets.token_hex(8)}"
        with self.lock:
            self.samplers[sampler_id] = folder
        return sampler_id

    def sampler(self, sampler_id: str) -> str:
        """A sampling session's model folder (Missing when there is none)."""
        found = self.samplers.get(sampler_id)
        if found is None:
            raise Missing(f"sampling session {sampler_id!r} does not exist")
        return found

    def base_folder(self, base_model: str) -> str:
        """An offered base model's folder (built on first use for the embedded model)."""
        from fto.backends.local.loop import LoopError, base_folder

        self.check_base(base_model)
        try:
            return str(base_folder(base_model, self.root / "base")[0])
        except LoopError as exc:
            raise UserError(str(exc)) from None

    def close(self) -> None:
        """The server stops: its models' jobs end as succeeded (their saved states stay loadable)."""
        from fto.schemas import JobStatus, ProviderJob

        for model in list(self.models.values()):
            model.folder.write_status(JobStatus.SUCCEEDED)
            model.folder.event("the training loop ended with fto serve")
            self.store.update_from_provider(model.job_id, ProviderJob(status=JobStatus.SUCCEEDED))
            os.close(model.lock_fd)
        self.models.clear()


def valid_name(name: str | None) -> str | None:
    """A state's name as the client gave it: a plain name, never a path."""
    if name is not None and not NAME.fullmatch(name):
        raise UserError(f"{name!r} is not a valid name: letters, digits, '.', '_' and '-', not starting with '.'")
    return name


def _running() -> Any:
    from fto.schemas import JobStatus

    return JobStatus.RUNNING
