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
    from vhakit.body import BodyModel
    from vhakit.smpl_files import GENDERS, find_smpl_file

    body = BodyModel.open()
    print(f"  body model   {body.name}: {body.num_vertices} vertices, {len(body.faces)} faces, "
          f"{len(body.subsample_indices)} subsampled vertices (open, licence-free default)")
    found = {}
    for gender in GENDERS:
        try:
            found[gender] = find_smpl_file(args.smpl_dir, gender)
        except FileNotFoundError:
            pass
    if found:
        print("  licensed SMPL found: " + ", ".join(str(p) for p in found.values()))
    else:
        where = args.smpl_dir or os.environ.get("VHAKIT_SMPL_DIR") or "(VHAKIT_SMPL_DIR unset)"
        print(f"  licensed SMPL: not found in {where}; the open body model is used. To use SMPL, "
              "register at https://smpl.is.tue.mpg.de, download the model files and set "
              "VHAKIT_SMPL_DIR to the folder holding SMPL_NEUTRAL.pkl.")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from vhakit.demo import run_demo

    run_demo(out_dir=Path(args.out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vhakit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="versions, device, body model, licensed SMPL files")
    p.add_argument("--smpl-dir", default=None, help="folder with SMPL_{NEUTRAL,MALE,FEMALE}.pkl")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("demo", help="the end-to-end demo; writes figures to runs/demo/")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.set_defaults(func=_cmd_demo)
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
