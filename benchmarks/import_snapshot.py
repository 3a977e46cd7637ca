"""Did a change to the ONNX importer change what it imports? A snapshot of every import, one
JSON line per model: the spec text (or the refusal message), a digest of the weights and
buffers, the outputs, the note and the opaque layers — plain, with `--opaque`, and as the
parsed mapping (`as_doc`) — taken with the cnncalc of any checkout, then diffed.

    python benchmarks/import_snapshot.py export DIR [--only tv_resnet18,timm_convnext_atto]
    python benchmarks/import_snapshot.py snap DIR OUT.jsonl [--tree CHECKOUT] [--fuzz N]
    python benchmarks/import_snapshot.py diff A.jsonl B.jsonl

`export` writes DIR/NAME.onnx for the hand-written models of tests/interop/nets.py, a set of
torchvision models (tests/interop/tvnets.py: random weights and batch-norm statistics) and of
timm models, through `torch.onnx.export` as `cnncalc import --torch` runs it (needs torch,
torchvision, timm; minutes). `snap` imports every DIR/*.onnx with the cnncalc of CHECKOUT
(default: this one; `git archive BASE | tar -x -C /tmp/base` gives the one of a commit) and,
with `--fuzz N`, the first N hostile graphs of tests/fuzz_onnx.py (from this checkout's tests,
so both sides get the same graphs). `diff` prints the models whose record differs (exit 1).
Not a timed test: run it by hand before merging a change to cnncalc/interop/onnx/.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

NETS = [("nets_resnet18", "resnet18", (64, 64, 3)), ("nets_unet", "unet", (64, 64, 3)),
        ("nets_unet_upsample", "unet_upsample", (64, 64, 3)), ("nets_with_unused", "with_unused", (16, 16, 3))]
TORCHVISION = ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x0_5", "squeezenet1_0",
               "densenet121", "regnet_x_400mf", "googlenet", "convnext_tiny", "mnasnet0_5", "vgg11", "alexnet",
               "lraspp_mobilenet_v3_large", "swin_t", "vit_b_16"]
TIMM = ["convnext_atto", "resnet18d", "efficientnet_b0", "ghostnet_100", "mobilevit_xxs", "regnetx_002",
        "rexnet_100", "dla34", "cspresnet50", "res2net50_14w_8s", "resnest14d", "nfnet_l0", "levit_128s",
        "poolformer_s12", "repvgg_a0", "mixnet_s", "gernet_s", "selecsls42b", "hrnet_w18_small", "dpn68",
        "inception_v4", "vit_tiny_patch16_224", "edgenext_xx_small", "coatnet_nano_rw_224", "fastvit_t8",
        "efficientformer_l1", "mobileone_s0", "convnextv2_atto", "gcvit_xxtiny", "tinynet_e"]


def export(folder: Path, only: set[str]):
    sys.path.insert(0, str(ROOT))
    import torch

    from cnncalc.interop.torch_import import torch_to_onnx
    from tests.interop import nets, tvnets

    cases = [(name, getattr(nets, fn), shape) for name, fn, shape in NETS]
    cases += [(f"tv_{n}", (lambda n=n: tvnets.build(n)), (224, 224, 3)) for n in TORCHVISION]

    def timm_model(n):
        import timm
        return timm.create_model(n, pretrained=False)
    cases += [(f"timm_{n}", (lambda n=n: timm_model(n)), (224, 224, 3)) for n in TIMM]
    folder.mkdir(parents=True, exist_ok=True)
    for name, fn, shape in cases:
        p = folder / f"{name}.onnx"
        if (only and name not in only) or p.exists():
            continue
        try:
            torch.manual_seed(0)
            p.write_bytes(torch_to_onnx(fn(), shape).SerializeToString())
            print("wrote", p, flush=True)
        except Exception as e:  # a model this torch/timm cannot build or export: left out
            print(f"skipped {name}: {type(e).__name__}: {str(e)[:200]}", flush=True)


def _digest(d) -> str:
    import numpy as np

    h = hashlib.sha1()
    for k in sorted(d):
        for n in sorted(d[k]):
            a = np.ascontiguousarray(d[k][n])
            h.update(f"{k}/{n}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def snap_here(folder: Path, out_path: Path, fuzz: int, tests_root: Path):
    """(In the child whose sys.path starts with the checkout to snapshot.)"""
    import cnncalc
    from cnncalc.errors import CnnCalcError
    from cnncalc.interop.onnx_import import import_model, read_model

    out = out_path.open("w")
    print(f"cnncalc from {Path(cnncalc.__file__).parent}", file=sys.stderr)

    def record(key, fn):
        try:
            imp = fn()
            rec = {"text": imp.text, "params": _digest(imp.params), "state": _digest(imp.state),
                   "outputs": imp.outputs, "opaque": imp.opaque, "note": imp.note, "dims": list(imp.onnx_input_dims)}
            if imp.doc is not None:
                rec["doc"] = json.dumps(imp.doc, default=str)
        except CnnCalcError as e:
            rec = {"error": str(e)}
        except Exception as e:  # a crash is recorded too: it must not change either
            rec = {"crash": f"{type(e).__name__}: {e}"}
        out.write(json.dumps({"key": key, **rec}, default=str) + "\n")
        out.flush()

    for p in sorted(folder.glob("*.onnx")):
        m = read_model(p)
        record(p.name, lambda: import_model(m, source=p.name))
        record(p.name + " --opaque", lambda: import_model(m, source=p.name, opaque=True))
        record(p.name + " as_doc", lambda: import_model(m, source=p.name, as_doc=True))
    if fuzz:
        sys.path.insert(0, str(tests_root))  # (cnncalc is imported already: only `tests` comes from here)
        from tests import fuzz_onnx

        d = Path(tempfile.gettempdir()) / "cnncalc-import-snapshot"  # (one path: messages may name it)
        for seed in range(fuzz):
            shutil.rmtree(d, ignore_errors=True)
            path, _ = fuzz_onnx.onnx_case(seed, d / "case")
            os.chdir(path.parent)  # (messages name the file as given: M.onnx, on both sides)
            for opaque in (False, True):
                record(f"fuzz {seed}" + (" --opaque" if opaque else ""),
                       lambda: import_model(read_model(path.name), source="M.onnx", opaque=opaque))
            os.chdir("/")
        shutil.rmtree(d, ignore_errors=True)


def diff(a: Path, b: Path) -> int:
    ra = {r["key"]: r for r in map(json.loads, a.read_text().splitlines())}
    rb = {r["key"]: r for r in map(json.loads, b.read_text().splitlines())}
    bad = 0
    for key in sorted(set(ra) | set(rb)):
        x, y = ra.get(key), rb.get(key)
        if x != y:
            bad += 1
            fields = sorted(k for k in set(x or {}) | set(y or {}) if (x or {}).get(k) != (y or {}).get(k))
            print(f"{key}: differs in {', '.join(fields) if x and y else 'presence'}")
    print(f"{len(set(ra) | set(rb)) - bad} identical, {bad} different")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("dir")
    e.add_argument("--only", default="")
    s = sub.add_parser("snap")
    s.add_argument("dir")
    s.add_argument("out")
    s.add_argument("--tree", default=str(ROOT))
    s.add_argument("--fuzz", type=int, default=0)
    s.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    d = sub.add_parser("diff")
    d.add_argument("a")
    d.add_argument("b")
    args = ap.parse_args()
    if args.cmd == "export":
        export(Path(args.dir), {x for x in args.only.split(",") if x})
    elif args.cmd == "diff":
        sys.exit(diff(Path(args.a), Path(args.b)))
    elif args.child:
        snap_here(Path(args.dir), Path(args.out), args.fuzz, ROOT)
    else:  # a fresh interpreter whose cnncalc is the one of --tree
        env = dict(os.environ, PYTHONPATH=str(Path(args.tree).resolve()))
        sys.exit(subprocess.call([sys.executable, "-u", __file__, "snap", str(Path(args.dir).resolve()),
                                  str(Path(args.out).resolve()), "--fuzz", str(args.fuzz), "--child"],
                                 env=env, cwd="/"))


if __name__ == "__main__":
    main()
