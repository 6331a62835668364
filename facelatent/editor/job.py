"""The job behind the `editor` rule: how to start the editor on this workflow's results, written and logged."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

from facelatent.store import atomic_write_text

log = logging.getLogger(__name__)


def serve_command(results: str | Path, configfile: str | Path, host: str = "127.0.0.1", port: int = 8765) -> str:
    """The shell command that starts the editor over `results` with the generator `configfile` names."""
    args = ["facelatent", "serve", "--results", str(results), "--config", str(configfile)]
    args += ["--host", host, "--port", str(port)]
    return shlex.join(args)


def editor(*, results: str | Path, configfile: str | Path, output: str | Path, port: int = 8765) -> str:
    """Rule editor: write (and log) how to start the editor; the server itself is interactive, so no job runs it."""
    command = serve_command(results, configfile, port=port)
    text = (
        "# the facelatent editor over this workflow's results (needs the ui extra: pip install -e '.[ui]')\n"
        f"{command}\n"
        f"# then open http://127.0.0.1:{port}/ (it listens on 127.0.0.1 only; see README, Editor)\n"
    )
    atomic_write_text(output, text)
    log.info("start the editor with: %s", command)
    print(f"start the editor with: {command}", flush=True)  # a local rule's stdout reaches the user's terminal
    return command
