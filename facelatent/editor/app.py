"""The editor's web application: a Starlette app over one results folder and the configured generator.

Routes: `/` (the page), `/api/catalog`, `/api/face`, `/api/render.png`, `/api/target.png`, `/api/save`,
`/api/upload` + `/api/jobs/<token>`, and `/files/<path>` (files under the results folder, nothing else).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from facelatent.editor.catalog import SAVED, UPLOADS, Catalog, face_ids, scan_results
from facelatent.editor.faces import Face, load_face
from facelatent.editor.render import apply_edits, distances, load_directions, png_bytes, render_rgb
from facelatent.editor.safety import (
    RequestError,
    UploadLimits,
    decode_upload,
    file_under,
    parse_edits,
    parse_face,
    parse_layers,
)
from facelatent.errors import FaceLatentError, InputFileError

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
STATIC = {"editor.js": "text/javascript", "editor.css": "text/css"}  # the page's own files, by fixed name
FACE_CACHE = 64  # faces kept in memory (a W+ latent at 1024 px is 37 KB)


@dataclass
class EditorSettings:
    """What `facelatent serve` runs with: the results folder, the validated config and the server's limits."""

    results: Path
    config: Mapping
    device: str = "auto"
    projection_dataset: str | None = None  # whose `projection:` overrides uploads take (None: the global section)
    upload_steps: int | None = 300  # cap on an upload's Adam steps (None: the configured number)
    limits: UploadLimits = field(default_factory=UploadLimits)
    slider_range: float | None = None  # +- signed distance; None: the edit grids' largest distance


class Editor:
    """The state one app serves from: the catalog, the generator, its directions, and the upload jobs."""

    def __init__(self, settings: EditorSettings):
        from facelatent.devices import pick_device
        from facelatent.generators import GeneratorSettings, load_generator

        config = settings.config
        self.settings = settings
        self.catalog: Catalog = scan_results(settings.results)
        self.gen_settings = GeneratorSettings.coerce(config["generator"])
        self.G = load_generator(self.gen_settings.checkpoint, pick_device(settings.device), expect=self.gen_settings)
        self.directions, self.skipped = {}, {}
        for name, entry in self.catalog.directions.items():
            try:
                self.directions.update(load_directions({name: entry.path}, self.G.num_ws, self.G.w_dim))
            except InputFileError as exc:  # a stale direction of another generator: listed as skipped
                self.skipped[name] = exc.reason
                log.warning("editor: skipping direction %s", exc)
        grid = [abs(float(t)) for t in config.get("edits", {}).get("distances", [])] or [3.0]
        self.slider_range = settings.slider_range or max(grid)
        self.jobs: dict = {}
        self.project_lock = threading.Lock()
        self.detector = None
        self.faces: OrderedDict[str, Face] = OrderedDict()  # recent faces: a slider drag re-reads none of them
        self.faces_lock = threading.Lock()  # renders run in a thread pool

    def face(self, text: str) -> Face:
        spec = parse_face(text)
        with self.faces_lock:
            face = self.faces.get(str(spec))
        if face is None:
            face = load_face(self.catalog, spec, self.G, self.gen_settings)
            with self.faces_lock:
                self.faces[str(spec)] = face
                while len(self.faces) > FACE_CACHE:
                    self.faces.popitem(last=False)
        return face

    def edited(self, params: Mapping[str, str]) -> tuple[Face, np.ndarray, dict]:
        """The face a query names, its edited latent, and the parsed state (face, edits, layers)."""
        face = self.face(params.get("face", ""))
        edits = parse_edits(params.get("edits", ""), set(self.directions), self.slider_range)
        layers = parse_layers(params.get("layers"), self.G.num_ws)
        state = {"face": str(face.spec), "edits": edits, "layers": list(layers)}
        return face, apply_edits(face.w, self.directions, edits, layers), state

    def render(self, w: np.ndarray) -> np.ndarray:
        return render_rgb(self.G, w, self.gen_settings.noise_mode)


def _catalog(request: Request) -> JSONResponse:
    ed: Editor = request.app.state.editor
    cat = ed.catalog
    return JSONResponse(
        {
            "generator": {**ed.G.describe(), "checkpoint": str(ed.gen_settings.checkpoint)},
            "slider_range": ed.slider_range,
            "latents": {name: face_ids(path) for name, path in cat.latents.items()},
            "synthetic": {name: face_ids(path, "facelatent.references") for name, path in cat.synthetic.items()},
            "directions": [
                {"name": e.name, "kind": e.kind, "label": e.label}
                for e in cat.directions.values()
                if e.name in ed.directions
            ],
            "skipped": ed.skipped,
            "upload_limits": {"max_bytes": ed.settings.limits.max_bytes, "max_side": ed.settings.limits.max_side},
        }
    )


def _face(request: Request) -> JSONResponse:
    ed: Editor = request.app.state.editor
    face = ed.face(request.query_params.get("face", ""))
    return JSONResponse(
        {
            "face": str(face.spec),
            "caption": face.caption,
            "has_target": face.target is not None,
            "distances": {k: round(v, 3) for k, v in distances(face.w, ed.directions).items()},
        }
    )


def _png(rgb: np.ndarray) -> Response:
    # no-store: every slider move is a fresh render, so the latency the page reports is the generator's
    return Response(png_bytes(rgb), media_type="image/png", headers={"Cache-Control": "no-store"})


def _render(request: Request) -> Response:
    ed: Editor = request.app.state.editor
    _, w, _ = ed.edited(request.query_params)
    return _png(ed.render(w))


def _target(request: Request) -> Response:
    face = request.app.state.editor.face(request.query_params.get("face", ""))
    if face.target is None:
        raise RequestError(f"{face.spec} is a generated face: it has no photo", 404)
    return _png(face.target)


def _save(request: Request, body: dict) -> JSONResponse:
    """Write the edited latent (our HDF5 latents layout) and its PNG under <results>/editor/saved/."""
    from facelatent.generators import generator_provenance
    from facelatent.grids import write_png
    from facelatent.store import write_table

    ed: Editor = request.app.state.editor
    face, w, state = ed.edited({k: str(v) for k, v in body.items() if k in ("face", "edits", "layers")})
    digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:10]
    stem = f"{str(face.spec).replace('/', '-')}_{digest}"
    latent, png = ed.catalog.root / SAVED / f"{stem}.h5", ed.catalog.root / SAVED / f"{stem}.png"
    latent.parent.mkdir(parents=True, exist_ok=True)
    columns = {
        "ids": np.array([stem], dtype=object),
        "w": w[None],
        "loss": np.full(1, np.nan, np.float32),  # an edit has no projection loss or PSNR
        "psnr": np.full(1, np.nan, np.float32),
        "steps": np.zeros(1, np.int32),
    }
    write_table(latent, "facelatent.latents", columns, generator_provenance(ed.G), {"editor": state})
    write_png(png, ed.render(w))
    rel = [str(p.relative_to(ed.catalog.root)) for p in (latent, png)]
    return JSONResponse({"latent": rel[0], "png": rel[1], "state": state}, status_code=201)


async def _save_endpoint(request: Request) -> JSONResponse:
    from starlette.concurrency import run_in_threadpool

    try:
        body = await request.json()
    except ValueError:
        raise RequestError("save expects a JSON body {face, edits, layers}") from None
    if not isinstance(body, dict):
        raise RequestError("save expects a JSON body {face, edits, layers}")
    return await run_in_threadpool(_save, request, body)


def _files(request: Request) -> FileResponse:
    ed: Editor = request.app.state.editor
    return FileResponse(file_under(ed.catalog.root, request.path_params["path"]))


async def _read_capped(request: Request, limit: int) -> bytes:
    """The request body, stopped with a 413 as soon as it passes `limit` bytes (before it is all received)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"upload of {declared} bytes is over the {limit} byte limit", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"upload is over the {limit} byte limit", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _accept_upload(ed: Editor, data: bytes) -> dict:
    """Decode, find and align the face (errors answer at once), then start its projection in the background."""
    from facelatent.align.job import AlignConfig, make_detector
    from facelatent.config import loss_terms
    from facelatent.editor.upload import align_photo, project_upload, start_projection, upload_projection, write_aligned
    from facelatent.paths import model_path, models_dir

    rgb = decode_upload(data, ed.settings.limits)
    align = AlignConfig(**{**ed.settings.config["align"], "output_size": ed.G.img_resolution})
    if ed.detector is None:  # the detector `align.landmarks` names, from the fetched weights
        mtcnn = model_path("mtcnn") if align.landmarks == "mtcnn" else None
        ed.detector = make_detector(align.landmarks, align, "cpu", mtcnn, models_dir() / "dlib68.dat")
    try:
        aligned = align_photo(rgb, align, ed.detector)
    except FaceLatentError as exc:
        raise RequestError(f"{exc}: upload a photo with one clearly visible face", 422) from None
    token = secrets.token_hex(8)
    folder = ed.catalog.root / UPLOADS
    folder.mkdir(parents=True, exist_ok=True)
    write_aligned(folder / f"{token}.aligned.h5", token, aligned, align.__dict__)
    cfg = upload_projection(ed.settings.config, ed.settings.projection_dataset, ed.settings.upload_steps)
    encoder = _upload_encoder(ed) if cfg.init == "encoder" else None
    facenet = model_path("facenet_casia") if "facenet" in loss_terms(cfg.loss) else None
    out = folder / f"{token}.h5"
    start_projection(
        ed.jobs,
        ed.project_lock,
        token,
        lambda: project_upload(ed.G, ed.jobs[token], folder / f"{token}.aligned.h5", out, cfg, encoder, facenet),
    )
    return {"token": token, "steps": cfg.steps, "job": f"/api/jobs/{token}"}


def _upload_encoder(ed: Editor):
    """The trained encoder an `init: encoder` projection starts from (results/generator/encoder.pt)."""
    from facelatent.projection.encoder import load_encoder

    path = ed.catalog.root / "generator" / "encoder.pt"
    if not path.is_file():
        raise RequestError(f"projection.init is 'encoder' but {path} is missing: run the train_encoder rule", 503)
    return load_encoder(path, ed.G)


async def _upload(request: Request) -> JSONResponse:
    from starlette.concurrency import run_in_threadpool

    ed: Editor = request.app.state.editor
    data = await _read_capped(request, ed.settings.limits.max_bytes)
    return JSONResponse(await run_in_threadpool(_accept_upload, ed, data), status_code=202)


def _job(request: Request) -> JSONResponse:
    job = request.app.state.editor.jobs.get(request.path_params["token"])
    if job is None:
        raise RequestError("no such upload", 404)
    return JSONResponse(job.as_json())


def _page(request: Request) -> HTMLResponse:
    return HTMLResponse((HERE / "page.html").read_text())


def _static(name: str):
    def endpoint(request: Request) -> Response:
        return Response((HERE / name).read_bytes(), media_type=STATIC[name])

    return endpoint


async def _request_error(request: Request, exc: Exception) -> JSONResponse:
    status = exc.status if isinstance(exc, RequestError) else 422  # a corrupt results file names itself
    return JSONResponse({"error": str(exc)}, status_code=status)


def create_app(settings: EditorSettings) -> Starlette:
    """The editor app; loads the generator and scans the results folder once, here."""
    app = Starlette(
        routes=[
            Route("/", _page),
            *(Route(f"/{name}", _static(name)) for name in STATIC),
            Route("/api/catalog", _catalog),
            Route("/api/face", _face),
            Route("/api/render.png", _render),
            Route("/api/target.png", _target),
            Route("/api/save", _save_endpoint, methods=["POST"]),
            Route("/api/upload", _upload, methods=["POST"]),
            Route("/api/jobs/{token:str}", _job),
            Route("/files/{path:path}", _files),
        ],
        exception_handlers={FaceLatentError: _request_error},
    )
    app.state.editor = Editor(settings)
    return app
