"""``twofold serve`` as a real process, for tests where the process is the point: several
instances behind nginx, SIGKILL under load, store outages. Settings go in as
``TWOFOLD_*`` environment variables, exactly as an operator would give them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .services import end_process, free_port

TWOFOLD = Path(sys.executable).with_name("twofold")


def migrate(database_url: str, data_dir: Path) -> None:
    """``twofold migrate`` for a server database (SQLite migrates itself at start)."""
    subprocess.run(
        [str(TWOFOLD), "migrate", "--database-url", database_url, "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
    )


@dataclass
class TwofoldProcess:
    """One ``twofold serve`` on 127.0.0.1 with its own port; ``settings`` are option
    names (``database_url``) mapped to values. Instances of one deployment share
    ``data_dir`` (the master key) and the store."""

    data_dir: Path
    settings: dict[str, object] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # HTTPS with the self-signed certificate `twofold serve --tls-self-signed` makes (and
    # keeps) in the data directory, for localhost, 127.0.0.1 and ::1.
    tls: bool = False
    #: Run this ASGI app ("examples/rails_login/app.py") under uvicorn instead of
    #: ``twofold serve``, with the same environment: an app of a user's own.
    app: Path | None = None
    #: Answers 200 once the process is ready.
    ready_path: str = "/healthz"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"twofold-{self.port}.log"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWOFOLD_")}
        values: dict[str, object] = {
            "argon2_profile": "owasp-minimum",
            "hash_workers": 1,
            "log_level": "warning",
            **({"tls_self_signed": "true"} if self.tls else {}),
            **self.settings,
            "host": "127.0.0.1",
            "port": self.port,
            "data_dir": self.data_dir,
        }
        env.update({f"TWOFOLD_{name.upper()}": str(value) for name, value in values.items()})
        return env

    def command(self) -> list[str]:
        if self.app is None:
            return [str(TWOFOLD), "serve"]
        return [
            *(sys.executable, "-m", "uvicorn", f"{self.app.stem}:app"),
            *("--app-dir", str(self.app.parent), "--host", "127.0.0.1", "--port", str(self.port)),
            *("--no-proxy-headers", "--no-access-log"),
        ]

    def start(self, timeout: float = 30) -> TwofoldProcess:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"twofold serve exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                # No certificate check: plain HTTP needs no TLS context (building one costs
                # ~40 ms per poll), and the self-signed certificate would not pass one.
                ready = httpx.get(f"{self.url}{self.ready_path}", timeout=1, verify=False)  # noqa: S501
                if ready.status_code == 200:
                    return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"twofold serve did not answer in {timeout} s")

    def stop(self) -> None:
        """SIGTERM and wait (a graceful shutdown)."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self.proc is not None:
            end_process(self.proc, signum)
        self.proc = None
