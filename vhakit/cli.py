"""The ``vhakit`` command line (also ``python -m vhakit``). A thin shell: each sub-command parses
its arguments and calls one library function."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


def _cmd_info(args: argparse.Namespace) -> int:
    from vhakit.runtime import default_device, versions

    print("vhakit environment")
    for name, ver in versions().items():
        print(f"  {name:<12} {ver}")
    dev = default_device()
    print(f"  device       {dev}" + (f" ({__import__('torch').cuda.get_device_name(0)})"
                                     if dev.type == "cuda" else ""))
    from vhakit.body.model import BodyModel
    from vhakit.body.smpl_files import GENDERS, find_smpl_file

    body = BodyModel.open()
    print(f"  body model   {body.name}: {body.num_vertices} vertices, {len(body.faces)} faces, "
          f"{len(body.subsample_indices)} subsampled vertices (open, licence-free default)")
    found = {}
    for gender in GENDERS:
        try:
            found[gender] = find_smpl_file(args.smpl_dir, gender)
        except FileNotFoundError:
            pass
    from vhakit.heatmaps.kernels import kernel_status

    print(f"  CPU kernel   {kernel_status()}")
    from vhakit.runtime import compile_status

    print(f"  compile      {compile_status(dev)}")
    if found:
        print("  licensed SMPL found: " + ", ".join(str(p) for p in found.values()))
    else:
        where = args.smpl_dir or os.environ.get("VHAKIT_SMPL_DIR") or "(VHAKIT_SMPL_DIR unset)"
        print(f"  licensed SMPL: not found in {where}; the open body model is used. To use SMPL, "
              "register at https://smpl.is.tue.mpg.de, download the model files and set "
              "VHAKIT_SMPL_DIR to the folder holding SMPL_NEUTRAL.pkl.")
    return 0


def _cmd_build_kernels(args: argparse.Namespace) -> int:
    from vhakit.heatmaps.kernels import build_kernels

    report = build_kernels(verbose=args.verbose)
    if report["ok"]:
        print(f"fused CPU soft-argmax kernel ready ({report['capability']}, "
              f"{report['seconds']:.1f} s)")
        return 0
    print(f"fused CPU soft-argmax kernel NOT built: {report['error']}\nThe kit still works: it "
          "uses the pure-torch soft-argmax (same results, slower). Install a C++ compiler "
          "(Debian: apt install g++) and rerun, or --verbose for the build log.", file=sys.stderr)
    return 0 if args.allow_failure else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from vhakit.experiments.demo import run_demo

    run_demo(out_dir=Path(args.out), seed=args.seed)
    return 0


def _cmd_make_data(args: argparse.Namespace) -> int:
    from vhakit.data.build import build_dataset

    try:
        out = build_dataset(preset=args.preset, split=args.split, part=args.part,
                            out_dir=Path(args.out), seed=args.seed, overwrite=args.overwrite)
    except FileExistsError as err:  # a message naming the flag, not a traceback (see main)
        raise ValueError(str(err).replace("overwrite=True (--overwrite)", "--overwrite")) from err
    except PermissionError as err:
        raise ValueError(f"cannot write {err.filename}: {err.strerror}; choose an output folder "
                         "you may write to") from err
    print(f"dataset ready in {out}")
    return 0


def _cmd_train_vha(args: argparse.Namespace) -> int:
    import time

    from vhakit.data.datasets import MeshDataset
    from vhakit.training.trainer import load_checkpoint
    from vhakit.training.vha import evaluate_vha, train_vha, vha_test_sets

    size = {"tiny": "tiny", "paper": "full"}.get(args.preset, "teaching")  # split sizes
    if args.data is None:
        print(f"training data: prior_pool train ({size}), posed on the open body model")
    data = args.data or MeshDataset.from_split("prior_pool", "train", size=size)
    overrides = _overrides(args, "vha")
    t0 = time.perf_counter()
    try:
        result = train_vha(preset=args.preset, data=data, out_dir=args.out, resume=args.resume,
                           overwrite=args.overwrite, **overrides)
    except FileExistsError as err:  # a message, not a traceback (see main)
        raise ValueError(str(err).replace("resume=True", "--resume").replace(
            "overwrite=True", "--overwrite")) from err
    seconds = time.perf_counter() - t0
    steps = load_checkpoint(result.checkpoint)["position"]["step"]
    print(result.model.summary())
    print(f"trained to step {steps} in {seconds:.0f} s (this call); checkpoint {result.checkpoint}")
    for name, m in evaluate_vha(result.model, vha_test_sets(size)).items():
        print(f"MPVE {name} test ({m['frames']} frames): {m['mpve_mm']:.1f} mm "
              f"(intermediate head {m['mpve_mid_mm']:.1f} mm)")
    return 0


def _cmd_train_bcp(args: argparse.Namespace) -> int:
    from vhakit.training.bcp import train_bcp

    if args.no_code_loss and args.no_vertex_loss:
        raise ValueError("--no-code-loss and --no-vertex-loss together leave nothing to train")
    try:
        res = train_bcp(preset=args.preset, data=args.data, vha=args.vha, out_dir=args.out,
                        resume=args.resume, overwrite=args.overwrite, eval_data=args.eval_data,
                        **_bcp_overrides(args))
    except FileExistsError as err:  # a message naming the flags, not a traceback (see main)
        raise ValueError(_flag_names(err)) from err
    _print_result("BCP", res)
    return 0


def _bcp_overrides(args: argparse.Namespace) -> dict:
    """train-bcp's overrides: ``--set`` items plus Table 1's switches (given only when used, so
    that a switch and a ``--set`` of the same field are caught as a conflict)."""
    overrides = _overrides(args, "bcp")
    for flag, key in (("--no-code-loss", "use_code_loss"), ("--no-vertex-loss", "use_vertex_loss"),
                      ("--no-init", "init_from_vha")):
        if getattr(args, flag[2:].replace("-", "_")):
            if key in overrides or f"task.{key}" in overrides:
                raise ValueError(f"{flag} and --set {key}=... both given; keep one")
            overrides[key] = False
    return overrides


def _cmd_train_baseline(args: argparse.Namespace) -> int:
    from vhakit.training.bcp import train_baseline

    try:
        res = train_baseline(preset=args.preset, data=args.data, out_dir=args.out,
                             resume=args.resume, overwrite=args.overwrite, eval_data=args.eval_data,
                             **_overrides(args, "baseline"))
    except FileExistsError as err:
        raise ValueError(_flag_names(err)) from err
    _print_result("baseline", res)
    return 0


def _cmd_pretrain_backbone(args: argparse.Namespace) -> int:
    from vhakit.training.backbone2d import pretrain_backbone, pretraining_data

    data = args.data
    if data is None:
        print("training data: the held-out prior_pool frames rendered with the preset's cameras "
              "(built once under data/)")
        data = pretraining_data(args.preset)
    try:
        res = pretrain_backbone(preset=args.preset, data=data, out_dir=args.out,
                                resume=args.resume, overwrite=args.overwrite,
                                eval_data=args.eval_data, **_overrides(args, "pose2d"))
    except FileExistsError as err:
        raise ValueError(_flag_names(err)) from err
    best = "" if res.best is None else f"; best eval 2D error {res.best:.2f} px"
    print(f"backbone: checkpoint {res.checkpoint}{best}; train BCP or the baseline from it with "
          f"--set backbone_init={res.out_dir}")
    return 0


def _overrides(args: argparse.Namespace, stage: str) -> dict:
    """Config overrides of a train-* command: ``--set FIELD=VALUE`` items (typed by the field
    they set), then ``--max-steps`` and ``--compile``, which must not repeat a ``--set``."""
    from vhakit.config import RUN_CLASSES, parse_overrides

    overrides = parse_overrides(args.set, RUN_CLASSES[stage])
    for flag, key in (("--max-steps", "max_steps"), ("--compile", "compile")):
        value = getattr(args, key)
        if value is None:
            continue
        if key in overrides or f"train.{key}" in overrides:
            raise ValueError(f"{flag} and --set {key}=... both given; keep one")
        overrides[key] = value
    return overrides


def _steps(text: str) -> int:
    """argparse type of ``--max-steps``: a whole number >= 1 (0 would mean "no limit" in
    ``TrainConfig``, the opposite of "stop after 0 steps")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of steps, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}; leave the flag out to "
                                         "train the preset's full budget")
    return value


_DATA = {"required": True, "metavar": "DIR", "help": "multi-view dataset folder (vhakit make-data)"}
_EVAL_DATA = {"default": None, "metavar": "DIR", "help": "evaluated after each epoch"}
_VHA_RUN = {"required": True, "metavar": "RUN_DIR",
            "help": "trained VHA run folder or checkpoint (vhakit train-vha)"}


def _add_train_command(sub, name: str, help: str, func, out: str, inputs: dict[str, dict],
                       switches: dict[str, str] | None = None) -> None:
    """A train-* sub-command: ``--preset``, the ``inputs`` flags (name -> add_argument keywords),
    ``--out``, ``--resume`` / ``--overwrite``, the ``switches`` (store_true flag -> help), then
    the flags every train-* command shares: budget, compile, and any config field."""
    p = sub.add_parser(name, help=help)
    p.add_argument("--preset", default="teaching", help="tiny | teaching | paper")
    for flag, kwargs in inputs.items():
        p.add_argument(flag, **kwargs)
    p.add_argument("--out", default=out, help="run folder")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue from the run's last.pt")
    group.add_argument("--overwrite", action="store_true",
                       help="start afresh in a used run folder: delete its checkpoints and logs "
                            "(refused if it holds other files)")
    for flag, text in (switches or {}).items():
        p.add_argument(flag, action="store_true", help=text)
    p.add_argument("--max-steps", type=_steps, default=None, metavar="N",
                   help="stop after this many steps in total (default: the preset's budget)")
    p.add_argument("--compile", choices=("off", "on", "auto"), default=None,
                   help="torch.compile the training step: auto = on CUDA only (default: the "
                        "preset's; paper: auto, ~1 min of compiling for 1.2-1.5x on a GPU)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any field of the run's model, task or train config, e.g. "
                        "--set epochs=20 --set lr=3e-4 (repeatable; section.field when a name "
                        "is in several sections); saved with the run's config")
    p.set_defaults(func=func)


def _print_result(what: str, res) -> None:
    best = "" if res.best is None else f"; best eval MPVE {res.best:.1f} mm"
    print(f"{what}: checkpoint {res.checkpoint}{best}")


def _flag_names(err: Exception) -> str:
    return str(err).replace("resume=True", "--resume").replace("overwrite=True", "--overwrite")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vhakit.experiments.pipeline import evaluate_run

    if args.frames < 0:
        raise ValueError(f"--frames must be 0 (all frames) or a positive number of frames, got "
                         f"{args.frames}")
    data = args.data
    if data is None:
        from vhakit.data.build import ensure_dataset

        part = "test"
        data = ensure_dataset(args.preset, args.split, part, root=args.data_root)
    summary = evaluate_run(args.model, data, frames=args.frames, fit=not args.no_fit,
                           out=args.out)
    print(f"{args.model} on {data} ({int(summary.pop('num_frames'))} frames):")
    for name, value in summary.items():
        print(f"  {name:<12} {value:8.2f}")
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    from vhakit.experiments.ablate import default_results_dir, run_sweep
    from vhakit.runtime import fast_mode

    # VHAKIT_FAST=1 changes the defaults only (tiny preset, one seed); explicit flags win.
    preset = args.preset or ("tiny" if fast_mode() else "teaching")
    seeds = args.seeds or (1 if fast_mode() else 3)
    # Only the full teaching sweep writes the committed results/; others go under runs/results/.
    results = args.results or default_results_dir(preset)
    result = run_sweep(args.table, preset=preset, seeds=seeds, cache_dir=Path(args.cache),
                       results_dir=Path(results), progress=not args.quiet)
    print(result.markdown)
    print("wrote " + ", ".join(str(p) for p in result.paths.values()))
    return 0


def _cmd_pretrain_classroom(args: argparse.Namespace) -> int:
    from vhakit.teaching.classroom_models import PRETRAINED_DIR, pretrain_classroom

    out = Path(args.out) if args.out else PRETRAINED_DIR
    card = pretrain_classroom(out_dir=out, preset=args.preset, seed=args.seed,
                              cache_dir=args.cache, progress=not args.quiet,
                              reuse_vha=args.reuse_vha, epochs=args.epochs,
                              backbone_init=args.backbone_init, vha_steps=args.vha_steps,
                              curve_frames=args.curve_frames)
    for name, metrics in card["metrics"].items():
        print(f"{name:9s} " + ", ".join(f"{k} {v:.1f}" for k, v in metrics.items()
                                        if k != "num_frames"))
    print(f"wrote {', '.join(card['files'])}, card.json, MODEL_CARD.md to {out} "
          f"({card['total_bytes'] / 1e6:.1f} MB)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vhakit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="versions, device, body model, licensed SMPL files")
    p.add_argument("--smpl-dir", default=None, help="folder with SMPL_{NEUTRAL,MALE,FEMALE}.pkl")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("build-kernels", help="compile the optional fused CPU soft-argmax kernel",
                       description="Compile (or load from the cache) vhakit's fused CPU "
                       "soft-argmax kernel now, instead of on first use (~40 s once per machine).")
    p.add_argument("--verbose", action="store_true", help="show the compiler's output")
    p.add_argument("--allow-failure", action="store_true",
                   help="exit 0 when it cannot be built (the kit falls back to pure torch)")
    p.set_defaults(func=_cmd_build_kernels)

    p = sub.add_parser("demo", help="the end-to-end demo; writes figures to runs/demo/")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the three trainings (default 0; benchmarks/demo_seeds.py "
                        "compares several)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("make-data", help="render a synthetic multi-view dataset to a folder")
    p.add_argument("--preset", default="tiny", help="data preset: tiny | teaching | paper")
    p.add_argument("--split", required=True,
                   help="h36m_like | lightstage_like | prior_pool | real_mocap")
    p.add_argument("--part", default="train", help="train | test")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace a complete dataset")
    p.set_defaults(func=_cmd_make_data)

    _add_train_command(sub, "train-vha", "train the vertex heatmap autoencoder", _cmd_train_vha,
                       "runs/vha", {"--data": {"default": None, "help": "dataset folder "
                                               "(default: the prior_pool split)"}})
    _add_train_command(sub, "train-bcp", "train the body code predictor (needs a trained VHA)",
                       _cmd_train_bcp, "runs/bcp",
                       {"--data": _DATA, "--vha": _VHA_RUN, "--eval-data": _EVAL_DATA},
                       {"--no-code-loss": "drop the latent-code L1 (Table 1)",
                        "--no-vertex-loss": "drop the vertex L1 (Table 1)",
                        "--no-init": "do not initialise the 3D encoder from the VHA encoder "
                                     "(Table 1)"})
    _add_train_command(sub, "train-baseline", "train the LMT-style baseline", _cmd_train_baseline,
                       "runs/baseline", {"--data": _DATA, "--eval-data": _EVAL_DATA})
    _add_train_command(sub, "pretrain-backbone", "pretrain the BCP / baseline 2D backbone on 2D "
                       "vertex positions (then --set backbone_init=RUN in train-bcp / "
                       "train-baseline)", _cmd_pretrain_backbone, "runs/backbone2d",
                       {"--data": {"default": None, "metavar": "DIR", "help": "multi-view "
                                   "dataset folder (default: held-out prior_pool frames rendered "
                                   "with the preset's cameras)"}, "--eval-data": _EVAL_DATA})
    p = sub.add_parser("evaluate", help="reconstruct a test set, fit SMPL, print metrics")
    p.add_argument("--model", required=True, help="a BCP or baseline run folder / checkpoint")
    p.add_argument("--data", default=None, help="a multi-view dataset folder (default: build "
                   "or reuse --split's test part)")
    p.add_argument("--split", default="h36m_like",
                   help="h36m_like | lightstage_like | real_mocap (when --data is absent)")
    p.add_argument("--preset", default="tiny", help="data preset when --data is absent")
    p.add_argument("--data-root", default="data", help="where built data sets are kept")
    p.add_argument("--frames", type=int, default=0, help="evaluate N evenly spread frames")
    p.add_argument("--no-fit", action="store_true", help="skip SMPL fitting (108-vertex error)")
    p.add_argument("--out", default=None, help="write reconstructions (.npz) for the viewer")
    p.set_defaults(func=_cmd_evaluate)
    p = sub.add_parser("ablate", help="reproduce the paper's Table 1 / Table 2 / data efficiency",
                       description="Train (or load cached) runs over seeds and write "
                       "results/{table1,table2,data_efficiency}.* beside the paper's numbers. "
                       "VHAKIT_FAST=1 defaults to --preset tiny --seeds 1.")
    p.add_argument("--table", required=True, choices=["1", "2", "efficiency"])
    p.add_argument("--preset", default=None,
                   help="tiny | teaching | paper (default: teaching; tiny with VHAKIT_FAST=1)")
    p.add_argument("--seeds", type=int, default=None,
                   help="number of seeds per row (default: 3; 1 with VHAKIT_FAST=1)")
    p.add_argument("--cache", default="runs/cache", help="run cache (default: runs/cache)")
    p.add_argument("--results", default=None,
                   help="results folder (default: results for the teaching preset, "
                   "runs/results/<preset> otherwise, runs/results/fast-<preset> with "
                   "VHAKIT_FAST=1)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_ablate)
    p = sub.add_parser("pretrain-classroom", help="train and save the classroom checkpoints",
                       description="Train (or reuse from runs/classroom) the VHA, BCP and "
                       "baseline of a preset and write small checkpoints and a model card.")
    p.add_argument("--preset", default="teaching", help="tiny | teaching | paper")
    p.add_argument("--out", default=None,
                   help="output folder (default: vhakit/assets/pretrained in the package)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=None,
                   help="training runs to reuse or extend (default: runs/classroom); "
                   "runs/cache/models reuses the runs of `vhakit ablate` (same preset and seed)")
    p.add_argument("--reuse-vha", default=None, metavar="VHA_PT",
                   help="keep this classroom vha.pt and train only the BCP and the baseline")
    p.add_argument("--epochs", type=float, default=None,
                   help="BCP and baseline epochs instead of the preset budget's rule")
    p.add_argument("--backbone-init", default="", metavar="SOURCE",
                   help="start the BCP and baseline 2D backbones from 'pose2d' (the kit's "
                        "pose-pretrained one) or a pretrain-backbone run (default: random)")
    p.add_argument("--vha-steps", type=int, default=None, metavar="N",
                   help="VHA training steps instead of the preset budget's")
    p.add_argument("--curve-frames", type=int, default=0, metavar="N",
                   help="evaluate N h36m_like test frames during training (learning curves "
                        "in each run's metrics.csv; default 0: none)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_pretrain_classroom)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError) as err:  # user errors: a message, not a traceback
        print(f"vhakit {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
