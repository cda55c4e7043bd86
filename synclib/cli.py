"""`synclib` commands: train, evaluate, reproduce.

Bad input (a value out of range, a corrupt file, a folder of another run) ends with exit code
2 and one line that names the file or option and the fix; SYNCLIB_DEBUG=1 shows the traceback."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import yaml

from . import __version__

__all__ = ["main"]


EXAMPLES = {
    "synclib": "example:\n  synclib reproduce --profile quick --jobs 2   # the whole book (what `make book` runs)",
    "train": "examples:\n"
             "  synclib train --method ours --arch vgg16_bn --width 0.125 --data data/pw --epochs 15 --out runs/my-run\n"
             "  synclib train runs/<hash>/job.json          # one run of a study, as an executor launches it\n"
             "  synclib train runs/<hash>/job.json --nproc 4   # the same run on 4 GPUs (DistributedDataParallel)",
    "evaluate": "examples:\n"
                "  synclib evaluate runs/my-run --data data/pw\n"
                "  synclib evaluate --torchvision resnet18 --weights my_resnet18.pt --layer layer4 --data data/pw",
    "reproduce": "examples:\n  synclib reproduce --profile smoke --only table1 --no-book\n"
                 "  synclib reproduce --profile paper --executor slurm --partition gpu --gpus-per-run 1 --time 600",
}


def _parse_params(items: list[str]) -> dict:
    """NAME=VALUE pairs; each value keeps its type as YAML reads it (2 is an int, 0.2 a float)."""
    out = {}
    for it in items or []:
        if "=" not in it:
            raise SystemExit(f"--param takes NAME=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def _under_torchrun(args, argv: list[str]) -> int | None:
    """With --nproc N > 1 outside torchrun: launch N copies of this command under torchrun
    (one process per rank; DistributedDataParallel) and return its exit code."""
    if args.nproc <= 1 or "RANK" in os.environ:
        return None
    rest, skip = [], False
    for a in argv:  # this command without --nproc
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    return subprocess.call([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            f"--nproc_per_node={args.nproc}", "-m", "synclib.cli", *rest])


def cmd_train(args) -> int:
    if args.nproc < 1:
        raise SystemExit(f"synclib train: --nproc must be at least 1, not {args.nproc}")
    if args.job:
        from .store import fit_job, train_job

        if "RANK" in os.environ:  # one rank of a run that train_job launched under torchrun
            fit_job(args.job, progress=os.environ["RANK"] == "0", device=args.device)
            return 0
        out = train_job(args.job, device=args.device, nproc=args.nproc)
        print(f"run written to {out}")
        return 0
    if not (args.data and args.out):
        raise SystemExit("synclib train: give a job file (synclib train runs/<hash>/job.json) "
                         "or --data DIR and --out DIR")
    from .train import TrainConfig, fit

    bs = args.batch_size if args.batch_size is not None else (64 if args.arch.startswith("resnet") else 32)
    # checked here, before anything is written (numbers, method, network, method parameters)
    cfg = TrainConfig(method=args.method, arch=args.arch, width=args.width, epochs=args.epochs,
                      batch_size=bs, lr=args.lr, seed=args.seed, pretrained=args.pretrained,
                      method_params=_parse_params(args.param))
    if (rc := _under_torchrun(args, args.argv)) is not None:
        return rc
    h = fit(cfg, args.data, args.out, device=args.device, progress=os.environ.get("RANK", "0") == "0")
    if os.environ.get("RANK", "0") == "0":
        print(f"test accuracy {h.get('test_acc')}; run written to {args.out}")
    return 0


def cmd_evaluate(args) -> int:
    from .data import PartDataset
    from .evaluate import evaluate, evaluate_run, imagenet_normalize, torchvision_model
    from .probe import LayerProbe

    ds = PartDataset(args.data, args.split)
    if args.torchvision:
        if not args.layer:
            raise SystemExit("synclib evaluate: --torchvision needs --layer (a node name, e.g. layer4)")
        net = torchvision_model(args.torchvision, args.weights, len(ds.classes))
        model = LayerProbe(net, args.layer, imagenet_normalize if args.normalize == "imagenet" else None)
        row = evaluate(model, ds, ds, top=args.top, phi=args.phi, device=args.device, progress=True)
    elif args.run:
        row = evaluate_run(args.run, ds, ds, top=args.top, phi=args.phi, device=args.device, progress=True)
    else:
        raise SystemExit("synclib evaluate: give a run folder, or --torchvision NAME --weights FILE --layer NODE")
    if args.json:
        print(json.dumps(row))
        return 0
    print("Table I  " + "  ".join(f"{k} {row[k]:.4f}" for k in ("interp", "stability", "purity", "diversity") if k in row))
    print(f"Table II accuracy {row['accuracy']:.4f}")
    return 0


def cmd_reproduce(args) -> int:
    from .reproduce import reproduce

    slurm = {"partition": args.partition, "gpus_per_node": args.gpus_per_run, "time": args.time,
             "cpus_per_task": args.threads}
    return reproduce(args.profile, only=args.only, jobs=args.jobs, book=not args.no_book,
                     executor=args.executor, slurm=slurm, wait=not args.no_wait)


def main(argv: list[str] | None = None) -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    ap = argparse.ArgumentParser(prog="synclib", description=__doc__, formatter_class=fmt, epilog=EXAMPLES["synclib"])
    ap.add_argument("--version", action="version", version=f"synclib {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train one run: a job file of the run store, or a method on a part dataset",
                       formatter_class=fmt, epilog=EXAMPLES["train"])
    t.add_argument("job", nargs="?", help="runs/<hash>/job.json written by `synclib reproduce` (no other option needed)")
    t.add_argument("--method", default="ours")
    t.add_argument("--arch", default="vgg16")
    t.add_argument("--data", help="a part dataset folder")
    t.add_argument("--epochs", type=int, default=100)
    t.add_argument("--out", help="the run folder (resumes if it exists)")
    t.add_argument("--width", type=float, default=1.0)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--pretrained", default=None, help="local torchvision ImageNet checkpoint")
    t.add_argument("--param", action="append", help="method hyperparameter, e.g. lambda1=0.2")
    t.add_argument("--device", default=None)
    t.add_argument("--nproc", type=int, default=1,
                   help="train the run on N processes (DistributedDataParallel through torchrun: one per GPU, "
                        "or gloo on the CPU); the global batch stays --batch-size")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("evaluate", help="print the Table I and II row of a run, or of any torchvision network",
                       formatter_class=fmt, epilog=EXAMPLES["evaluate"])
    e.add_argument("run", nargs="?", help="a run folder (synclib train --out, or runs/<hash>)")
    e.add_argument("--torchvision", metavar="NAME", help="a torchvision network instead of a run, e.g. resnet18")
    e.add_argument("--weights", help="its state dict (a local file; nothing is downloaded)")
    e.add_argument("--layer", help="the node whose maps are measured, e.g. layer4 (torchvision's node names)")
    e.add_argument("--normalize", choices=["imagenet", "none"], default="imagenet",
                   help="the network's input normalization (default: ImageNet's mean and std)")
    e.add_argument("--data", required=True)
    e.add_argument("--split", default="test")
    e.add_argument("--top", type=float, default=0.3, help="fraction of activations above T_f")
    e.add_argument("--phi", type=float, default=0.2, help="IoU threshold of a hit")
    e.add_argument("--device", default=None)
    e.add_argument("--json", action="store_true")
    e.set_defaults(fn=cmd_evaluate)

    r = sub.add_parser("reproduce", help="train what the run store lacks, run the notebooks, build the book",
                       formatter_class=fmt, epilog=EXAMPLES["reproduce"])
    r.add_argument("--profile", default="quick")
    r.add_argument("--only", action="append", help="an artifact, e.g. table1 (repeatable); with --no-book, only its notebooks run")
    r.add_argument("--jobs", type=int, default=1)
    r.add_argument("--no-book", action="store_true")
    r.add_argument("--no-wait", action="store_true",
                   help="if another build of this checkout is running its notebooks or book, stop (exit 3) "
                        "instead of waiting for it")
    r.add_argument("--executor", choices=["local", "slurm"], default="local",
                   help="where runs train: here (--jobs processes), or one SLURM job each (submitit)")
    r.add_argument("--partition", help="slurm: the partition (else the profile's slurm: section, else the default)")
    r.add_argument("--gpus-per-run", type=int, help="slurm: GPUs per job")
    r.add_argument("--time", type=int, help="slurm: time limit per job, in minutes")
    r.add_argument("--threads", type=int, help="slurm: CPU threads per job (default: cores // --jobs, as locally)")
    r.set_defaults(fn=cmd_reproduce)

    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    from .files import CorruptFile

    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError, CorruptFile) as e:  # bad input: the message names the file and the fix
        if os.environ.get("SYNCLIB_DEBUG"):
            raise
        print(f"synclib {args.cmd}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
