"""Training throughput of HF transformers' FalconForCausalLM on one GPU, for the side-by-side table of
bench/gpu_check.sh: bf16 weights, SDPA attention, fused AdamW, gradient clipping, eager and torch.compile.

    python3 bench/gpu_torch_bench.py CONFIG_DIR [CONFIG_DIR ...] [-B 4] [-T 2048] [--steps 8] [--modes eager,compile]

Each CONFIG_DIR holds a config.json that falcon_cuda reads too. One process measures every configuration in every
mode (the import and CUDA start are paid once) and prints a line for each as it goes: the median step's tokens/s and
MFU against the H100 SXM's 989 TFLOP/s of dense bf16, with FLOPs per token counted as falcon.c counts them
(6 per parameter + 6 L C T).
"""
import argparse
import statistics
import time

import torch
from transformers import FalconConfig, FalconForCausalLM


def bench(path, mode, a):
    cfg = FalconConfig.from_pretrained(path)
    torch.manual_seed(0)
    with torch.device("cuda"):  # initialised on the GPU: a 1B model's CPU init would take longer than its bench
        model = FalconForCausalLM._from_config(cfg, attn_implementation="sdpa", dtype=torch.bfloat16)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    step_model = torch.compile(model) if mode == "compile" else model
    ids = torch.randint(0, cfg.vocab_size, (a.B, a.T), device="cuda")
    times, loss = [], float("nan")
    for k in range(a.steps + 2):  # two warm-up steps (compilation happens in the first)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = step_model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if k >= 2:
            times.append(time.perf_counter() - t0)
        loss = out.loss.item()
    tps = a.B * a.T / statistics.median(times)
    fpt = 6.0 * n_params + 6.0 * cfg.num_hidden_layers * cfg.hidden_size * a.T
    print(f"torch {mode} {path}: {n_params} params, B={a.B} T={a.T}: {tps:.0f} tok/s (median of {len(times)} steps), "
          f"MFU {100 * tps * fpt / (a.peak_tflops * 1e12):.1f}%, loss {loss:.3f}", flush=True)
    del model, opt, step_model, out
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("configs", nargs="+")
    ap.add_argument("-B", type=int, default=4)
    ap.add_argument("-T", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    a = ap.parse_args()
    for mode in a.modes.split(","):
        for path in a.configs:
            try:
                bench(path, mode, a)
            except Exception as err:  # one configuration that fails (out of memory, say) does not stop the others
                print(f"torch {mode} {path}: failed: {type(err).__name__}: {str(err)[:300]}", flush=True)
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
