"""Training speed on the CPU: falcon.c against PyTorch running HF transformers' FalconForCausalLM, same run.

    .venv/bin/python bench/bench_train_cpu.py [--runs 5] [--steps 4] [--threads 1 2] [--configs tiny small]
                                              [--isa native|avx2]

Both sides train the same configuration on random tokens with the same batch, fp32, the same thread count and
AdamW: one step is forward, backward, gradient-norm clipping and the optimizer update. Each side runs --steps
timed steps after a warm-up step, --runs times, alternating falcon.c and PyTorch; the median tokens/s is
reported, with MFU against the FMA peak bench/peak.c measures on the same machine in the same run.
FLOPs per token (falcon.c's flops_per_token): 6 per parameter + 6 L C T (causal attention, forward + backward).

--isa avx2 holds both sides to AVX2 + FMA on a machine with AVX-512, as on a Zen 3 or older Intel core: falcon.c
and the probe are built with -mavx2 -mfma (falcon.c's 6 x 16 kernel), and PyTorch is told to stop at AVX2
(ATEN_CPU_CAPABILITY for its own kernels, MKL_ENABLE_INSTRUCTIONS for MKL's sgemm, ONEDNN_MAX_CPU_ISA for oneDNN).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = os.environ.get("CC", "cc")
FLAGS = ["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-fopenmp-simd", "-fno-math-errno", "-O3", "-fopenmp"]
ISA_FLAGS = {"native": ["-march=native"], "avx2": ["-mavx2", "-mfma"]}
TORCH_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}

# The presets of falcon.c (falcon.c's PRESETS table) as HF FalconConfig arguments, with the batch measured.
CONFIGS = {
    "tiny": dict(hf=dict(vocab_size=8192, hidden_size=256, num_hidden_layers=6, num_attention_heads=8,
                         multi_query=True, new_decoder_architecture=False),
                 B=8, T=256),
    "small": dict(hf=dict(vocab_size=8192, hidden_size=512, num_hidden_layers=8, num_attention_heads=8,
                          num_kv_heads=2, new_decoder_architecture=True, num_ln_in_parallel_attn=2),
                  B=4, T=512),
}


def build(isa):
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    exe = {}
    for name, srcs in (("bench_train_cpu", ["bench/bench_train_cpu.c", "data.c", "tokenizer.c", "json.c"]),
                       ("peak", ["bench/peak.c"])):
        out = os.path.join("build", name if isa == "native" else f"{name}_{isa}")
        extra = ["-ffp-contract=fast"] if name == "peak" else []  # the probe's FMA loop relies on contraction
        subprocess.run([CC, *FLAGS, *ISA_FLAGS[isa], *extra, "-o", out, *srcs, "-lm"], cwd=ROOT, check=True,
                       stderr=subprocess.DEVNULL)
        exe[name] = os.path.join(ROOT, out)
    return exe


def peak(exe, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([exe, "3"], env=env, check=True, capture_output=True, text=True).stdout
    vals = dict(line.split()[:2] for line in out.splitlines()[1:])
    return float(vals[f"fma_gflops_{threads}thread" + ("s" if threads > 1 else "")])


def run_c(exe, preset, B, T, steps, threads):
    out = subprocess.run([exe, preset, str(B), str(T), str(steps), str(threads)], check=True, capture_output=True,
                         text=True).stdout
    f = out.split("tokens_per_s")[1].split()
    return float(f[0]), float(f[2])  # tokens/s, FLOPs per token


def run_torch(model, opt, ids, steps):
    import torch
    times = []
    for s in range(steps + 1):
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if s > 0:
            times.append(time.perf_counter() - t0)
    return ids.numel() / statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS))
    ap.add_argument("--isa", choices=list(ISA_FLAGS), default="native")
    args = ap.parse_args()
    if args.isa == "avx2":
        os.environ.update(TORCH_AVX2)  # read when torch loads
    import torch
    import transformers
    from transformers import FalconConfig, FalconForCausalLM

    exe = build(args.isa)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.runs} runs x {args.steps} steps, "
          f"instruction set: {args.isa} (PyTorch: {torch.backends.cpu.get_cpu_capability()})")
    print("| config | params | B x T | threads | peak GFLOP/s | falcon.c tok/s | MFU | PyTorch tok/s | MFU | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.configs:
        cfg = CONFIGS[name]
        B, T = cfg["B"], cfg["T"]
        for threads in args.threads:
            torch.set_num_threads(threads)
            torch.manual_seed(0)
            hf = FalconConfig(parallel_attn=True, bias=False, alibi=False, max_position_embeddings=max(T, 512),
                              **cfg["hf"])
            model = FalconForCausalLM(hf).float().train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
            ids = torch.randint(0, hf.vocab_size, (B, T))
            c_tps, t_tps, peaks, fpt = [], [], [], 0.0
            for _ in range(args.runs):
                peaks.append(peak(exe["peak"], threads))
                tps, fpt = run_c(exe["bench_train_cpu"], name, B, T, args.steps, threads)
                c_tps.append(tps)
                t_tps.append(run_torch(model, opt, ids, args.steps))
            pk, c, t = statistics.median(peaks), statistics.median(c_tps), statistics.median(t_tps)
            params = sum(p.numel() for p in model.parameters())
            print(f"| {name} | {params / 1e6:.1f}M | {B} x {T} | {threads} | {pk:.0f} | {c:.0f} | "
                  f"{100 * c * fpt / 1e9 / pk:.0f}% | {t:.0f} | {100 * t * fpt / 1e9 / pk:.0f}% | {c / t:.2f} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
