"""`facelatent serve`: read and check the workflow config, build the editor app, run it under uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from facelatent.config import check_config
from facelatent.editor.safety import UploadLimits
from facelatent.errors import ConfigError, InputFileError
from facelatent.paths import REPO_ROOT

log = logging.getLogger(__name__)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def read_config(path: str | Path, schema: str | Path | None = None) -> dict:
    """The workflow config, validated with its schema's defaults filled in (what Snakemake's jobs see)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "config file does not exist")
    config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: the config is not a mapping")
    return dict(check_config(config, schema or REPO_ROOT / "config" / "schema.yaml"))


def run_server(app, host: str, port: int) -> None:
    """Serve `app` until interrupted; a non-loopback address gets a warning (anyone there can upload)."""
    import uvicorn

    if host not in LOOPBACK:
        log.warning("the editor listens on %s: anyone who reaches it can browse the results and upload photos", host)
    print(f"facelatent editor: http://{host if ':' not in host else f'[{host}]'}:{port}/", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def limits(max_upload_mb: float, max_side: int) -> UploadLimits:
    return UploadLimits(max_bytes=int(max_upload_mb * 1024 * 1024), max_side=max_side)
