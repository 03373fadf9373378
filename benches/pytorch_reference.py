#!/usr/bin/env python3
"""CaGeM in plain PyTorch (eager fp32 by default): the peer a user would otherwise run, for side-by-side
speed comparisons with `cagem bench` on the same machine, in the same call.

It builds the model of docs/design.md §1 exactly as cagem does (same networks, widths, heads, the
exact sum over y, the semi-supervised loss with its stop-gradients, batch-norm statistics
collected on the unlabelled pass only, Adam), written the way a PyTorch user would write it: y
enters the y-conditioned networks as a one-hot vector concatenated to their other inputs, and the
sum over y repeats every example K times. (cagem instead computes a first layer once per example
and adds one weight row per cluster; the arithmetic is the same.)

    python3 benches/pytorch_reference.py [--device cpu|cuda] [--batch 100] [--labelled 100]
        [--steps 20] [--warmup 3] [--threads N] [--iw-rows 1000] [--autocast bf16] [--compile]
        [--json]

--autocast bf16 runs the forward passes under torch.autocast (bf16 matrix products, on the CPU
or a GPU); --compile wraps the loss, forward and IW functions in torch.compile (its compilation
falls in the warm-up steps, so give --warmup a few).

Prints medians; with --json the last line is one JSON object with the fields of `cagem bench
--json` that it measures (train_examples_per_s, forward_examples_per_s, iw_samples_per_s).
"""

import argparse
import contextlib
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def block(inp, h0, h1):
    """Dense → BatchNorm → ReLU → Dense → BatchNorm → ReLU (no bias before batch norm)."""
    return nn.Sequential(
        nn.Linear(inp, h0, bias=False), nn.BatchNorm1d(h0), nn.ReLU(),
        nn.Linear(h0, h1, bias=False), nn.BatchNorm1d(h1), nn.ReLU(),
    )


class Gaussian(nn.Module):
    """μ and log σ² heads, starting near zero."""

    def __init__(self, inp, dim):
        super().__init__()
        self.mu, self.logvar = nn.Linear(inp, dim), nn.Linear(inp, dim)
        for lin in (self.mu, self.logvar):
            nn.init.normal_(lin.weight, std=1e-3)
            nn.init.zeros_(lin.bias)

    def forward(self, h):
        return self.mu(h), self.logvar(h).clamp(-30.0, 30.0)


def log_normal(z, mu, lv):
    return -0.5 * (LOG_2PI + lv + (z - mu) ** 2 * torch.exp(-lv)).sum(-1)


def log_std_normal(z):
    return -0.5 * (LOG_2PI + z ** 2).sum(-1)


def bernoulli_loglik(logits, x):
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def sample(mu, lv):
    return mu + torch.exp(0.5 * lv) * torch.randn_like(mu)


class CaGeM(nn.Module):
    def __init__(self, x=784, z1=64, z2=32, k=10, qh=(1024, 512), ph=(512, 1024)):
        super().__init__()
        self.k = k
        self.q_z1, self.q_z1_head = block(x, *qh), Gaussian(qh[1], z1)
        self.q_y, self.q_y_head = block(x + z1, *qh), nn.Linear(qh[1], k)
        self.q_z2, self.q_z2_head = block(x + k + z1, *qh), Gaussian(qh[1], z2)
        self.p_y, self.p_y_head = block(z2, *ph), nn.Linear(ph[1], k)
        self.p_z1, self.p_z1_head = block(k + z2, *ph), Gaussian(ph[1], z1)
        self.p_x, self.p_x_head = block(k + z1, *ph), nn.Linear(ph[1], x)

    def onehots(self, n, device):
        """Cluster-major one-hot rows: row k·n + b is cluster k."""
        return torch.eye(self.k, device=device).repeat_interleave(n, 0)

    def elbo(self, x):
        """(recon, neg_kl) per example, y summed exactly, one z1 and one z2 per y."""
        b, k = x.shape[0], self.k
        mu1, lv1 = self.q_z1_head(self.q_z1(x))
        z1 = sample(mu1, lv1)
        log_qy = F.log_softmax(self.q_y_head(self.q_y(torch.cat([x, z1], 1))), 1)
        y = self.onehots(b, x.device)
        xr, z1r = x.repeat(k, 1), z1.repeat(k, 1)
        mu2, lv2 = self.q_z2_head(self.q_z2(torch.cat([xr, y, z1r], 1)))
        z2 = sample(mu2, lv2)
        log_py = (F.log_softmax(self.p_y_head(self.p_y(z2)), 1) * y).sum(1)
        mp1, lp1 = self.p_z1_head(self.p_z1(torch.cat([y, z2], 1)))
        log_px = bernoulli_loglik(self.p_x_head(self.p_x(torch.cat([y, z1r], 1))), xr)
        rest = log_normal(z1r, mp1, lp1) + log_py + log_std_normal(z2) - log_normal(z2, mu2, lv2)
        qy_t, log_qy_t = log_qy.exp().t(), log_qy.t()
        recon = (qy_t * log_px.view(k, b)).sum(0)
        neg_kl = (qy_t * (rest.view(k, b) - log_qy_t)).sum(0) - log_normal(z1, mu1, lv1)
        return recon, neg_kl

    def classifier_terms(self, x, labels):
        """H_p, H_q: only p(y|z2) and q(y|z1,x) get gradients; batch-norm statistics are not
        collected (momentum 0 keeps the running averages)."""
        b, k = x.shape[0], self.k
        bns = [m for m in self.modules() if isinstance(m, nn.BatchNorm1d)]
        saved = [m.momentum for m in bns]
        for m in bns:
            m.momentum = 0.0
        with torch.no_grad():
            z1 = sample(*self.q_z1_head(self.q_z1(x)))
        log_qy = F.log_softmax(self.q_y_head(self.q_y(torch.cat([x, z1], 1))), 1)
        hq = F.nll_loss(log_qy, labels, reduction="none")
        with torch.no_grad():
            y = self.onehots(b, x.device)
            z2 = sample(*self.q_z2_head(self.q_z2(torch.cat([x.repeat(k, 1), y, z1.repeat(k, 1)], 1))))
        log_py = F.log_softmax(self.p_y_head(self.p_y(z2)), 1)
        log_py_label = log_py.gather(1, labels.repeat(k).unsqueeze(1)).view(k, b)
        hp = -torch.logsumexp(log_qy.t() + log_py_label, 0)
        for m, s in zip(bns, saved):
            m.momentum = s
        return hp, hq

    @torch.no_grad()
    def iw_log_sum_w(self, x, samples):
        """log Σ_s w_s per image, y summed (cagem's IwEstimator::SumY), batch norm in eval mode."""
        n, k = x.shape[0], self.k
        sn = samples * n
        mu1, lv1 = self.q_z1_head(self.q_z1(x))
        mu1r, lv1r, xr = mu1.repeat(samples, 1), lv1.repeat(samples, 1), x.repeat(samples, 1)
        z1 = sample(mu1r, lv1r)
        log_qz1 = log_normal(z1, mu1r, lv1r)
        y = self.onehots(sn, x.device)
        xk, z1k = xr.repeat(k, 1), z1.repeat(k, 1)
        mu2, lv2 = self.q_z2_head(self.q_z2(torch.cat([xk, y, z1k], 1)))
        z2 = sample(mu2, lv2)
        log_py = (F.log_softmax(self.p_y_head(self.p_y(z2)), 1) * y).sum(1)
        mp1, lp1 = self.p_z1_head(self.p_z1(torch.cat([y, z2], 1)))
        log_px = bernoulli_loglik(self.p_x_head(self.p_x(torch.cat([y, z1k], 1))), xk)
        a = log_px + log_normal(z1k, mp1, lp1) + log_py + log_std_normal(z2) - log_normal(z2, mu2, lv2)
        log_w = torch.logsumexp(a.view(k, sn), 0) - log_qz1
        return torch.logsumexp(log_w.view(samples, n), 0)


def timed(fn, device, warmup, steps):
    """Median milliseconds of fn() after warm-up, synchronising the GPU around each call."""
    ms = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            ms.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ms)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--labelled", type=int, default=100)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--iw-rows", type=int, default=1000)
    ap.add_argument("--autocast", choices=["none", "bf16"], default="none")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(a.device)
    torch.manual_seed(0)
    model = CaGeM().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    probs = torch.rand(4 * max(a.batch, a.labelled), 784, device=dev) ** 3
    xu = torch.bernoulli(probs[: a.batch])
    xl = torch.bernoulli(probs[: a.labelled])
    yl = torch.randint(0, 10, (a.labelled,), device=dev)
    alpha = 1.0

    def precision():
        if a.autocast == "bf16":
            return torch.autocast(dev.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def compiled(fn):
        return torch.compile(fn) if a.compile else fn

    @compiled
    def loss_of_batch():
        with precision():
            recon, neg_kl = model.elbo(xu)
            loss = -(recon + neg_kl).mean()
            if a.labelled > 0:
                hp, hq = model.classifier_terms(xl, yl)
                loss = loss + alpha * (hp.mean() + hq.mean())
        return loss.float()

    def train_step():
        model.train()
        loss = loss_of_batch()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @compiled
    def elbo_no_grad():
        with torch.no_grad(), precision():
            recon, _ = model.elbo(xu)
        return recon

    def forward():
        model.train()
        return elbo_no_grad()

    x_iw = torch.bernoulli(probs[:10])

    @compiled
    def iw_bound():
        with torch.no_grad(), precision():
            return model.iw_log_sum_w(x_iw, a.iw_rows // 10)

    def iw():
        model.eval()
        return iw_bound()

    train_ms = timed(train_step, dev, a.warmup, a.steps)
    fwd_ms = timed(forward, dev, a.warmup, a.steps)
    iw_ms = timed(iw, dev, a.warmup, a.steps)
    r = {
        "impl": "pytorch " + torch.__version__,
        "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
        "threads": torch.get_num_threads(),
        "batch": a.batch,
        "labelled_batch": a.labelled,
        "train_step_ms_median": train_ms,
        "train_examples_per_s": a.batch / (train_ms / 1e3),
        "forward_ms_median": fwd_ms,
        "forward_examples_per_s": a.batch / (fwd_ms / 1e3),
        "iw_samples_per_s": (a.iw_rows // 10) * 10 / (iw_ms / 1e3),
        "parameters": sum(p.numel() for p in model.parameters()),
        "mode": ("compiled" if a.compile else "eager") + (" bf16 autocast" if a.autocast == "bf16" else " f32"),
    }
    print(
        f"PyTorch {torch.__version__} on {r['device']} ({r['threads']} threads), {r['parameters']} parameters, "
        f"{r['mode']}"
    )
    print(f"training step  {train_ms:.1f} ms median  →  {r['train_examples_per_s']:.0f} unlabelled examples/s")
    print(f"forward ELBO   {fwd_ms:.1f} ms median  →  {r['forward_examples_per_s']:.0f} examples/s")
    print(f"IW evaluation  {r['iw_samples_per_s']:.0f} importance samples/s with y summed")
    if a.json:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
