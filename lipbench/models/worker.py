"""Models in another Python environment, driven through lipbench's worker protocol.

`WorkerModel` is an adapter like any other to the runner. It starts the model's own
interpreter on `worker_side.py` (the protocol's one-file worker side, see its docstring)
once, at `load`, and sends it each clip: the reference frames and audio as .npy files
in shared memory (/dev/shm where there is one), the answers as JSON lines on a pipe,
each chunk's frames as a .npy file beside them, read as soon as its message arrives.

Timing is the worker's: its clock runs by lipbench's definitions on its side of the
boundary (CUDA events there), so `timing()` gives TTFF, FPS and chunk latencies without
the shipping. The shipping is reported beside them: `transfer_s` per chunk (the worker
writing the frames plus lipbench reading them) and `harness_ttff_s` / `harness_total_s`,
the same stream on lipbench's clock, shipping included.

Failures: a worker that exits, sends something that is not the protocol, a chunk that
is not uint8 RGB frames, or nothing for `timeout_s`, fails the unit with the worker's own
error text (its last log lines); it is stopped and started again for the next unit. An
exception in the model's code fails the unit with the worker's traceback, and the worker
stays up.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from lipbench.models.base import LipSyncModel
from lipbench.timing import stream_figures
from lipbench.types import Request

WORKER_FILE = Path(__file__).with_name("worker_side.py")
LOG_TAIL_LINES = 30


class WorkerError(RuntimeError):
    """The worker failed: it exited, hung or broke the protocol (it is stopped)."""


class WorkerModelError(WorkerError):
    """The model's own code raised inside the worker (the worker stays up)."""


def shared_memory_dir() -> str:
    """Where requests and chunks cross: /dev/shm (RAM) where it exists, else the temp dir."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


class WorkerModel(LipSyncModel):
    """A model in another Python environment, served through the worker protocol.

    The model is served by `python` (its environment's interpreter) from `entry`
    ("module:Class", importable from `path` plus the subclass's `worker_path`), created
    there with `args`. Subclasses fix `entry` and `worker_path`; the generic `worker`
    model takes them as args and declares `causal` and `chunk_frames` for the runner.
    `files` ({name: path}) are files the worker reads (its checkpoints): their sha256 go
    into each unit's fingerprint, so a replaced checkpoint regenerates the videos."""

    name = "worker"
    entry = ""
    worker_path: tuple[str, ...] = ()

    def __init__(
        self,
        python: str,
        entry: str | None = None,
        path=(),
        args: dict | None = None,
        causal: bool | None = None,
        chunk_frames=None,
        timeout_s: float = 600.0,
        files: dict | None = None,
    ):
        super().__init__()
        self.python, self.entry = str(python), entry or self.entry
        if not self.entry or ":" not in self.entry:
            raise ValueError(f"{self.name}: entry must be 'module:Class' inside the worker, got {self.entry!r}")
        self.path = [str(Path(p).resolve()) for p in (*self.worker_path, *([path] if isinstance(path, str) else path))]
        self.args = dict(args or {})
        if causal is not None:
            self.causal = bool(causal)
        if chunk_frames is not None:
            self.chunk_frames = tuple(int(n) for n in chunk_frames)
        self.timeout_s = float(timeout_s)
        self.files = {str(name): Path(path) for name, path in (files or {}).items()}
        self.process, self.exchange, self._request_files = None, None, None
        self.restarts, self._last = 0, None

    def weight_files(self) -> dict[str, Path]:
        missing = [f"{name} ({path})" for name, path in self.files.items() if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"{self.name}: files not found: {', '.join(missing)}")
        return dict(self.files)

    # ------------------------------------------------------------ the process

    def load(self, device: str = "cpu") -> None:
        super().load(device)
        self._start()

    def _start(self) -> None:
        if not (Path(self.python).is_file() or shutil.which(self.python)):
            raise WorkerError(f"{self.name}: worker interpreter {self.python!r} not found")
        self.exchange = tempfile.mkdtemp(prefix="lipbench-worker-", dir=shared_memory_dir())
        self.log = open(Path(self.exchange) / "worker.log", "w+b")
        read_fd, write_fd = os.pipe()
        spec = {"entry": self.entry, "path": self.path, "args": self.args, "shm_dir": self.exchange, "out_fd": write_fd}
        try:
            self.process = subprocess.Popen(
                [self.python, "-I", str(WORKER_FILE), json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=self.log,
                stderr=self.log,
                pass_fds=(write_fd,),
                cwd=self.exchange,
            )
        finally:
            os.close(write_fd)
        self.messages, self._buffer = read_fd, b""
        try:
            self._expect("ready")
            self._send({"op": "load", "device": self.device})
            loaded = self._expect("loaded")
        except BaseException:  # a worker that cannot start or load is not kept
            self.stop()
            raise
        if loaded.get("parameters"):
            self.parameters = int(loaded["parameters"])
        if loaded.get("dtype") not in (None, "none"):
            self.dtype = str(loaded["dtype"])

    def stop(self) -> None:
        """Stop the worker now (a clean close is `close`)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
            os.close(self.messages)
            self.log.close()
        if self.exchange:
            shutil.rmtree(self.exchange, ignore_errors=True)
            self.exchange, self._request_files = None, None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self._send({"op": "close"})
                self._expect("closed")
            except WorkerError:
                pass  # stopped below either way
        self.stop()

    def _ensure_running(self) -> None:
        if self.process is None:  # stopped after a failure: a fresh worker for this unit
            self.restarts += 1
            self._start()

    # ------------------------------------------------------------ messages

    def _send(self, message: dict) -> None:
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._failure("exited") from None

    def _log_tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        lines = self.log.read().decode(errors="replace").strip().splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def _failure(self, what: str) -> WorkerError:
        """A WorkerError for a broken worker, with its own last words; the worker is stopped."""
        if self.process is not None and what == "exited":
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            what = f"exited with code {self.process.returncode}"
        tail = self._log_tail() if self.process is not None else ""
        error = WorkerError(f"worker {self.entry} ({self.python}) {what}" + (f":\n{tail}" if tail else ""))
        self.stop()
        return error

    def _receive(self) -> dict:
        deadline = time.monotonic() + self.timeout_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.messages], [], [], left)[0]:
                raise self._failure(f"sent nothing for {self.timeout_s:g} s (timeout_s)")
            data = os.read(self.messages, 1 << 16)
            if not data:
                raise self._failure("exited")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            message = json.loads(line)
            if not isinstance(message, dict) or "event" not in message:
                raise ValueError("no event")
        except ValueError:
            raise self._failure(f"broke the protocol (sent {line[:200]!r})") from None
        if message["event"] == "error":
            raise WorkerModelError(
                f"worker {self.entry}: {message.get('error')}\n{message.get('traceback', '')}".rstrip()
            )
        return message

    def _expect(self, event: str) -> dict:
        message = self._receive()
        if message["event"] != event:
            raise self._failure(f"broke the protocol (sent {message['event']!r} where {event!r} was due)")
        return message

    # ------------------------------------------------------------ requests

    def _request(self, request: Request) -> dict:
        """The request's fields, its frames and audio written once per clip to shared memory."""
        key = (request.clip_id, id(request.frames), id(request.recorded_audio))
        if self._request_files is None or self._request_files[0] != key:
            folder = Path(self.exchange)
            np.save(folder / "frames.npy", np.ascontiguousarray(request.frames), allow_pickle=False)
            np.save(
                folder / "audio.npy", np.ascontiguousarray(request.recorded_audio, dtype=np.float32), allow_pickle=False
            )
            self._request_files = (
                key,
                {
                    "clip_id": request.clip_id,
                    "frames": str(folder / "frames.npy"),
                    "audio": str(folder / "audio.npy"),
                    "audio_rate": request.audio_rate,
                    "fps": request.fps,
                },
            )
        # the timing protocol: the worker paces the audio by it from the start of its stream
        return {**self._request_files[1], "protocol": request.feed.protocol, "lead_s": request.feed.lead_s}

    def prepare(self, request: Request) -> None:
        self._ensure_running()
        try:
            self._send({"op": "prepare", "request": self._request(request)})
            self._expect("prepared")
        except WorkerModelError:
            raise
        except BaseException:  # interrupted mid-exchange (a unit timeout): its answers would be out of step
            self.stop()
            raise

    def _read_chunk(self, message: dict) -> np.ndarray:
        path = Path(str(message.get("file", "")))
        if path.parent != Path(self.exchange) or not path.is_file():
            raise self._failure(f"sent a chunk that is not a file in its exchange folder ({message.get('file')!r})")
        try:
            frames = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise self._failure(f"sent a chunk that is not a .npy array ({exc})") from None
        finally:
            path.unlink(missing_ok=True)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
            raise self._failure(f"sent a malformed chunk: {frames.dtype} {frames.shape}, expected uint8 (t, H, W, 3)")
        return frames

    def stream(self, request: Request) -> Iterator[np.ndarray]:
        self._ensure_running()
        self._last = None
        arrivals, lengths, transfer, harness, reads, memory = [], [], [], [], [], []
        started = time.perf_counter()
        try:
            self._send({"op": "stream", "request": self._request(request)})
            while True:
                message = self._receive()
                if message["event"] == "end":
                    break
                if message["event"] != "chunk":
                    raise self._failure(f"broke the protocol (sent {message['event']!r} during a stream)")
                began = time.perf_counter()
                frames = self._read_chunk(message)
                transfer.append(float(message.get("write_s", 0.0)) + time.perf_counter() - began)
                arrivals.append(float(message["arrival_s"]))
                reads.append(float(message.get("audio_read_s", 0.0)))
                memory.append(message.get("memory_bytes"))
                lengths.append(len(frames))
                harness.append(time.perf_counter() - started)
                yield frames
        except WorkerModelError:
            raise
        except BaseException:  # interrupted or abandoned mid-stream: a fresh worker for the next unit
            self.stop()
            raise
        if not arrivals:
            raise WorkerError(f"worker {self.entry}: the stream yielded no chunk")
        self._last = {
            **stream_figures(arrivals, lengths, request.n_frames / request.fps, memory),
            "stages_s": message.get("stages_s", {}),
            "stage_spans_s": message.get("stage_spans_s", []),
            "audio_read_s": reads,
            "timing_protocol": request.feed.protocol,
            "timer": f"worker:{message.get('timer')}",
            "device": message.get("device"),
            **{k: message[k] for k in ("peak_allocated_bytes", "peak_reserved_bytes") if k in message},
            "transfer_s": transfer,
            "transfer_total_s": float(sum(transfer)),
            "harness_ttff_s": harness[0],
            "harness_total_s": harness[-1],
            "worker_restarts": self.restarts,
        }

    def timing(self, request: Request) -> dict | None:
        """The last stream's figures on the worker's clock, with the transfer beside them."""
        return self._last

    def describe(self) -> dict:
        return {**super().describe(), "python": self.python, "entry": self.entry, "worker_path": self.path}
