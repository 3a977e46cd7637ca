"""Train a network written by `cnncalc export --to torch` with DistributedDataParallel.

    cnncalc export lenet5 --to torch -o lenet5_net.py
    torchrun --nproc_per_node=2 examples/torch_ddp_train.py --net lenet5_net.py --epochs 1

One process per CPU core group (gloo) or per GPU (nccl, chosen when CUDA is available).
Data: the digits bundled with cnncalc (cnncalc/data/mnist5k.npz, 5,000 MNIST images), padded
28x28 → 32x32 and scaled to [0, 1]; the last 1,000 images of a fixed permutation are the
test set. Rank 0 prints one JSON line with the test accuracy. Needs only torch and numpy.
"""
import argparse
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

DEFAULT_DATA = Path(__file__).resolve().parent.parent / "cnncalc" / "data" / "mnist5k.npz"


def load_digits(path):
    z = np.load(path)
    x = np.pad(z["images"], ((0, 0), (2, 2), (2, 2))).astype(np.float32)[:, None] / 255.0
    y = z["labels"].astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(y))
    tr, te = perm[:-1000], perm[-1000:]
    return (torch.from_numpy(x[tr]), torch.from_numpy(y[tr])), (torch.from_numpy(x[te]), torch.from_numpy(y[te]))


def load_net(path, weights=None):
    spec = importlib.util.spec_from_file_location("exported_net", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = mod.Net()
    if weights:
        net.load_state_dict(torch.load(weights))
    return net


def log_probs(out):
    """The exported LeNet-5 ends in a softmax (as the spec says): take its log; else log_softmax."""
    if out.min() >= 0 and torch.allclose(out.sum(1), torch.ones(len(out)), atol=1e-4):
        return torch.log(out.clamp_min(1e-12))
    return F.log_softmax(out, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", required=True, help="the .py file cnncalc export wrote")
    ap.add_argument("--weights", help="a .pt state_dict (cnncalc export --weights)")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32, help="per process")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    distributed = "WORLD_SIZE" in os.environ
    cuda = torch.cuda.is_available()
    if distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    torch.manual_seed(args.seed)  # the same initial weights on every rank
    torch.set_num_threads(1)

    (xtr, ytr), (xte, yte) = load_digits(args.data)
    train = TensorDataset(xtr, ytr)
    sampler = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler)
    net = load_net(args.net, args.weights).to(device)
    model = DDP(net) if distributed else net
    opt = torch.optim.SGD(model.parameters(), lr=args.lr * world, momentum=0.9)  # linear scaling
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        model.train()
        for x, y in loader:
            opt.zero_grad()
            loss = F.nll_loss(log_probs(model(x.to(device))), y.to(device))
            loss.backward()
            opt.step()
    if rank == 0:
        net.eval()
        with torch.no_grad():
            pred = net(xte.to(device)).argmax(1).cpu()
        acc = float((pred == yte).float().mean())
        print(json.dumps({"world_size": world, "epochs": args.epochs, "test_accuracy": acc}))
    if distributed:
        dist.barrier()  # rank 0 evaluates alone: the others wait for it before gloo's teardown
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
