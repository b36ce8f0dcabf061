"""Produces the reference files that tests/test_falcon.c compares falcon.c against.

HF transformers' FalconForCausalLM itself (not a re-implementation) runs tiny random models of each layout in fp32:
  tests/ref/<name>/config.json + model.safetensors   the model, saved by save_pretrained (falcon.c loads it as is)
  tests/ref/<name>/ref.safetensors                    a batch, its logits and loss, every parameter gradient,
                                                      and 10 AdamW steps: their batches, losses, lrs, grad norms
                                                      and the final weights
  tests/ref/<name>/score_ids.txt, score_loss.txt      one sequence and HF's loss for labels = input_ids
  tests/ref/mqa/mc.txt                                multiple-choice items (token ids) and HF's log-likelihoods
  tests/ref/<name>_bf16/, <name>_fp16/               the same model saved in bf16 / fp16 (loading test; the
                                                      three Falcon layouts only)
  tests/ref/tree_<name>/ref.safetensors               conversation trees packed into rows, run by the <name> model
                                                      (mqa, gqa) with the equivalent 4D mask and position ids:
                                                      the batch, its logits and loss, every parameter gradient

The switches of the RefinedWeb models (bias, sequential blocks, full multi-head attention, ALiBi) are HF's own code
too. The SwiGLU MLP ("mlp_type": "swiglu") is falcon.c's, not HF's: its reference is HF's Falcon with each block's
MLP replaced by the small PyTorch module SwiGLUMLP below, which keeps HF's weight names.

Run from the repository root:  .venv/bin/python tests/make_reference.py [LAYOUT ... | trees]   (default: all of them,
the layouts first: the tree references load the saved mqa and gqa models)
Needs torch, transformers, safetensors (PyPI). Deterministic: seeds are fixed.

With --check-c DIR it instead loads a checkpoint directory written by falcon.c with from_pretrained and prints the
largest logit difference against falcon.c's own logits (DIR/logits.safetensors, written by `falcon logits`).
"""
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import FalconConfig, FalconForCausalLM
from transformers.models.falcon.modeling_falcon import FalconLinear, build_alibi_tensor

# The training hyper-parameters of the 10-step reference; tests/test_falcon.c uses the same numbers.
STEPS, WARMUP, LR_PEAK, LR_FLOOR_FRAC = 10, 3, 1e-2, 0.1
BETA1, BETA2, EPS, WEIGHT_DECAY, CLIP = 0.9, 0.95, 1e-8, 0.1, 0.5
B, T = 2, 9

LAYOUTS = {
    # Falcon-7B style: multi-query (one K/V head), one shared LayerNorm, parallel attention + MLP.
    "mqa": dict(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, multi_query=True,
                new_decoder_architecture=False, parallel_attn=True, bias=False, alibi=False,
                max_position_embeddings=64, rope_theta=10000.0),
    # The same with every Falcon's head size, 64 (the layouts above have 8): falcon_cuda's bf16 build runs its
    # tensor-core attention on head sizes 32 and 64 only.
    "mqa64": dict(vocab_size=61, hidden_size=128, num_hidden_layers=2, num_attention_heads=2, multi_query=True,
                  new_decoder_architecture=False, parallel_attn=True, bias=False, alibi=False,
                  ffn_hidden_size=128, max_position_embeddings=64, rope_theta=10000.0, initializer_range=0.1),
    # Falcon-40B/180B style: grouped K/V heads, ln_attn + ln_mlp, non-default ffn size and theta.
    "gqa": dict(vocab_size=67, hidden_size=48, num_hidden_layers=2, num_attention_heads=6, num_kv_heads=2,
                new_decoder_architecture=True, parallel_attn=True, bias=False, alibi=False,
                ffn_hidden_size=80, max_position_embeddings=64, rope_theta=5000.0),
    # new_decoder_architecture with a single LayerNorm shared by attention and MLP (num_ln_in_parallel_attn=1).
    "gqa1": dict(vocab_size=53, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_kv_heads=4,
                 new_decoder_architecture=True, num_ln_in_parallel_attn=1, parallel_attn=True, bias=False,
                 alibi=False, max_position_embeddings=64, rope_theta=10000.0),
    # The switches, one at a time on the mqa layout: biases on every Linear layer;
    "bias": dict(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, multi_query=True,
                 new_decoder_architecture=False, parallel_attn=True, bias=True, alibi=False,
                 max_position_embeddings=64, rope_theta=10000.0),
    # sequential blocks (parallel_attn=False): input_layernorm, attention, post_attention_layernorm, MLP;
    "seq": dict(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, multi_query=True,
                new_decoder_architecture=False, parallel_attn=False, bias=False, alibi=False,
                max_position_embeddings=64, rope_theta=10000.0),
    # full multi-head attention (multi_query=False): per head q, k, v interleaved in the fused QKV;
    "mha": dict(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, multi_query=False,
                new_decoder_architecture=False, parallel_attn=True, bias=False, alibi=False,
                max_position_embeddings=64, rope_theta=10000.0),
    # ALiBi instead of RoPE, with 16 heads: slopes that are not powers of two, so that HF's bf16 rounding of the
    # slopes and of slope x position shows; 512 positions, so that the table reaches the steps beyond position 256;
    "alibi": dict(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=16, multi_query=True,
                  new_decoder_architecture=False, parallel_attn=True, bias=False, alibi=True,
                  max_position_embeddings=512),
    # all four together: the layout of Falcon-RW-1B/7B (the RefinedWeb paper's models);
    "rw": dict(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, multi_query=False,
               new_decoder_architecture=False, parallel_attn=False, bias=True, alibi=True,
               max_position_embeddings=64),
    # falcon.c's SwiGLU MLP, its hidden size round(2/3 of 4 x 32) = 85 (the GELU MLP's parameter count).
    "swiglu": dict(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, multi_query=True,
                   new_decoder_architecture=False, parallel_attn=True, bias=False, alibi=False, mlp_type="swiglu",
                   ffn_hidden_size=85, max_position_embeddings=64, rope_theta=10000.0),
}


class SwiGLUMLP(torch.nn.Module):
    """The SwiGLU MLP of falcon.c: dense_h_to_4h makes 2 FF outputs, the gate (first FF) and the value (last FF);
    h = silu(gate) * value; dense_4h_to_h takes h (FF) back to C. Same weight names as HF's FalconMLP."""

    def __init__(self, config):
        super().__init__()
        ff = config.ffn_hidden_size
        self.dense_h_to_4h = FalconLinear(config.hidden_size, 2 * ff, bias=config.bias)
        self.dense_4h_to_h = FalconLinear(ff, config.hidden_size, bias=config.bias)
        for lin in (self.dense_h_to_4h, self.dense_4h_to_h):
            torch.nn.init.normal_(lin.weight, std=config.initializer_range)
            if lin.bias is not None:
                torch.nn.init.zeros_(lin.bias)

    def forward(self, x):
        gate, value = self.dense_h_to_4h(x).chunk(2, dim=-1)
        return self.dense_4h_to_h(F.silu(gate) * value)


def lr_at(step):
    """Linear warm-up over WARMUP steps, then cosine decay from the peak to LR_FLOOR_FRAC * peak at STEPS."""
    if step < WARMUP:
        return LR_PEAK * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, STEPS - WARMUP)
    floor = LR_PEAK * LR_FLOOR_FRAC
    return floor + (LR_PEAK - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_batch(gen, vocab):
    ids = torch.randint(0, vocab, (B, T), generator=gen)
    labels = ids.clone()
    labels[0, 3] = -100  # HF's ignore index: these targets contribute nothing to the loss
    labels[1, 6] = -100
    return ids, labels


def build(name, kw):
    torch.manual_seed(1234)
    cfg = FalconConfig(**kw)
    # larger than the default 0.02 so that every path moves the logits visibly; a wider model takes a smaller one
    # (its products sum more terms) so that its activations stay about as large
    cfg.initializer_range = kw.get("initializer_range", 0.2)
    model = FalconForCausalLM(cfg).float()
    if kw.get("mlp_type") == "swiglu":
        for block in model.transformer.h:
            block.mlp = SwiGLUMLP(cfg)
    # LayerNorm weights and biases start at 1 and 0; perturb them so their gradients and roles are exercised
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model


def attention_implementation(kw):
    """eager everywhere except with ALiBi: transformers 5's eager path adds ALiBi twice (once itself, once more
    inside the attention mask it builds with ALiBi folded in); its sdpa path adds it once, as the original
    RefinedWeb code did. docs/architecture.md has the details."""
    return "sdpa" if kw.get("alibi") else "eager"


def reference(name, kw, outdir):
    model = build(name, kw)
    model.config._attn_implementation = attention_implementation(kw)
    d = os.path.join(outdir, name)
    model.save_pretrained(d, safe_serialization=True)
    if name in ("mqa", "gqa", "gqa1"):
        for dtype, suffix in ((torch.bfloat16, "_bf16"), (torch.float16, "_fp16")):
            m2 = build(name, kw).to(dtype)
            m2.save_pretrained(os.path.join(outdir, name + suffix), safe_serialization=True)

    ref = {}
    gen = torch.Generator().manual_seed(42)
    ids, labels = make_batch(gen, kw["vocab_size"])
    out = model(input_ids=ids, labels=labels)
    out.loss.backward()
    ref["input_ids"] = ids.to(torch.int32)
    ref["labels"] = labels.to(torch.int32)
    ref["logits"] = out.logits.detach().contiguous()
    ref["loss"] = out.loss.detach().reshape(1)
    if kw.get("alibi"):
        # the score biases exactly as HF adds them: (NH, max_position_embeddings), key position along the rows
        n = kw["max_position_embeddings"]
        nh = kw["num_attention_heads"]
        alibi = build_alibi_tensor(torch.ones(1, n, dtype=torch.long), nh, torch.float32)
        ref["alibi"] = (alibi / math.sqrt(kw["hidden_size"] // nh)).reshape(nh, n).contiguous()
    for n, p in model.named_parameters():
        ref["grad." + n] = p.grad.detach().clone().contiguous()

    # 10 AdamW steps. Decoupled weight decay on the matrices (embeddings, QKV, dense, MLP), none on LayerNorms.
    model = build(name, kw)
    model.config._attn_implementation = attention_implementation(kw)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR_PEAK, betas=(BETA1, BETA2), eps=EPS)
    all_ids, all_labels, losses, lrs, norms = [], [], [], [], []
    for step in range(STEPS):
        ids, labels = make_batch(gen, kw["vocab_size"])
        opt.zero_grad()
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.step()
        all_ids.append(ids)
        all_labels.append(labels)
        losses.append(loss.item())
        lrs.append(lr_at(step))
        norms.append(norm.item())
    ref["train.input_ids"] = torch.stack(all_ids).to(torch.int32)
    ref["train.labels"] = torch.stack(all_labels).to(torch.int32)
    ref["train.losses"] = torch.tensor(losses, dtype=torch.float32)
    ref["train.lrs"] = torch.tensor(lrs, dtype=torch.float32)
    ref["train.grad_norms"] = torch.tensor(norms, dtype=torch.float32)
    for n, p in model.named_parameters():
        ref["final." + n] = p.detach().clone().contiguous()
    save_file(ref, os.path.join(d, "ref.safetensors"))
    # the one-line check of `falcon score`: HF's loss with labels = input_ids for one sequence
    score_ids = torch.randint(0, kw["vocab_size"], (1, 20), generator=gen)
    with torch.no_grad():
        fresh = build(name, kw)
        fresh.config._attn_implementation = attention_implementation(kw)
        score_loss = fresh(input_ids=score_ids, labels=score_ids).loss.item()
    with open(os.path.join(d, "score_ids.txt"), "w") as f:
        f.write(" ".join(str(i) for i in score_ids[0].tolist()) + "\n")
    with open(os.path.join(d, "score_loss.txt"), "w") as f:
        f.write(f"{score_loss:.6f}\n")
    # multiple choice: HF's summed log-likelihood of each choice's tokens after the context
    if name == "mqa":
        fresh = build(name, kw)
        with open(os.path.join(d, "mc.txt"), "w") as f:
            for item in range(4):
                ctx = torch.randint(0, kw["vocab_size"], (3 + 2 * item,), generator=gen)
                choices = [torch.randint(0, kw["vocab_size"], (1 + (c + item) % 4,), generator=gen) for c in range(3)]
                f.write(f"item {item % 3} 3\nctx {len(ctx)} {' '.join(map(str, ctx.tolist()))}\n")
                for ch in choices:
                    seq = torch.cat([ctx, ch]).unsqueeze(0)
                    with torch.no_grad():
                        logp = torch.log_softmax(fresh(input_ids=seq).logits[0], dim=-1)
                    ll = sum(logp[len(ctx) - 1 + k, ch[k]].item() for k in range(len(ch)))
                    f.write(f"choice {len(ch)} {' '.join(map(str, ch.tolist()))} {ll:.6f}\n")
    print(f"{name}: loss {ref['loss'].item():.6f}, train losses {[round(x, 4) for x in losses]}, "
          f"grad norms {[round(x, 3) for x in norms]}")


# Conversation trees (docs/trees.md), hand-made: each a list of messages (parent index or -1, number of tokens),
# parents before children and in depth-first order, so that every subtree is contiguous once packed.
TREES = {
    "chain": [(-1, 3), (0, 2), (1, 4), (2, 2)],                       # one deep conversation
    "fan": [(-1, 2), (0, 3), (0, 1), (0, 2)],                         # a prompt and three alternative replies
    "single": [(-1, 4)],                                              # one message alone
    "mixed": [(-1, 2), (0, 2), (1, 3), (0, 1), (3, 2), (3, 2)],       # branches at two depths
}
TREE_ROWS = [["chain", "single"], ["fan", "mixed", "single"]]       # two or three trees per row, then padding
TREE_T = 32


def pack_trees(gen, vocab):
    """Packs TREE_ROWS depth first into (B, TREE_T) rows, as data.c does, returning input ids, targets (the id
    each position predicts, -100 for none), position ids, span_end (the last position of the subtree of the
    token's message) and the equivalent boolean (B, T, T) mask: key j visible from query i iff j <= i <= span_end[j].
    A token predicts the next token of its message; a message's last token predicts the first token of its first
    child, or <|endoftext|> (here the id vocab - 1) when it has none. Padding: target -100, position 0, and it
    sees only itself."""
    eot = vocab - 1
    B = len(TREE_ROWS)
    ids = torch.randint(0, vocab - 1, (B, TREE_T), generator=gen)
    targets = torch.full((B, TREE_T), -100)
    pos = torch.zeros((B, TREE_T), dtype=torch.long)
    span = torch.arange(TREE_T).repeat(B, 1)  # padding: its own position
    for b, row in enumerate(TREE_ROWS):
        t = 0
        for name in row:
            msgs = TREES[name]
            start, end, first_child = [], [], {}
            for k, (parent, n) in enumerate(msgs):
                start.append(t)
                p0 = 0 if parent < 0 else int(pos[b, end[parent]]) + 1
                pos[b, t:t + n] = torch.arange(p0, p0 + n)
                t += n
                end.append(t - 1)
                if parent >= 0:
                    first_child.setdefault(parent, k)
            for k, (parent, n) in enumerate(msgs):
                last = k  # the last message of k's subtree: descendants follow k contiguously
                while last + 1 < len(msgs) and is_descendant(msgs, last + 1, k):
                    last += 1
                span[b, start[k]:end[k] + 1] = end[last]
                targets[b, start[k]:end[k]] = ids[b, start[k] + 1:end[k] + 1]
                targets[b, end[k]] = ids[b, start[first_child[k]]] if k in first_child else eot
        assert t <= TREE_T
    i = torch.arange(TREE_T)
    visible = (i[None, None, :] <= i[None, :, None]) & (i[None, :, None] <= span[:, None, :])  # [b, query, key]
    return ids, targets, pos, span, visible


def is_descendant(msgs, k, a):
    while k >= 0 and k != a:
        k = msgs[k][0]
    return k == a


def tree_reference(name, outdir):
    """The packed trees run by HF's FalconForCausalLM with a custom 4D mask. In transformers 5.x a 4D
    attention_mask is used as given (masking_utils returns an already-4D mask unchanged), and FalconAttention adds
    it to the scores: the eager path computes softmax(scores + mask), so the mask must be additive floats (0 where
    visible, the dtype's minimum where not); a boolean mask would be added as 0/1: no masking, and no error. The sdpa path
    hands it to torch's scaled_dot_product_attention, which also takes a boolean mask (True = visible); both are
    run below and must agree. Eager, fp32, is the reference. The loss is the mean cross-entropy of the logits
    against the targets (ignoring -100): HF's own shift-by-one labels cannot say that a leaf predicts
    <|endoftext|> while the next position holds another branch."""
    d = os.path.join(outdir, name)
    model = FalconForCausalLM.from_pretrained(d, dtype=torch.float32)
    gen = torch.Generator().manual_seed(7)
    ids, targets, pos, span, visible = pack_trees(gen, model.config.vocab_size)
    additive = torch.zeros(visible.shape, dtype=torch.float32).masked_fill(~visible, torch.finfo(torch.float32).min)
    model.config._attn_implementation = "sdpa"
    with torch.no_grad():
        sdpa_logits = model(input_ids=ids, attention_mask=visible[:, None], position_ids=pos).logits
    model.config._attn_implementation = "eager"
    out = model(input_ids=ids, attention_mask=additive[:, None], position_ids=pos)
    assert (out.logits - sdpa_logits).abs().max() < 1e-5, "eager and sdpa disagree on the tree mask"
    loss = torch.nn.functional.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), targets.reshape(-1),
                                             ignore_index=-100)
    loss.backward()
    ref = {"input_ids": ids.to(torch.int32), "targets": targets.to(torch.int32), "position_ids": pos.to(torch.int32),
           "span_end": span.to(torch.int32), "logits": out.logits.detach().contiguous(), "loss": loss.detach().reshape(1)}
    for n, p in model.named_parameters():
        ref["grad." + n] = p.grad.detach().clone().contiguous()
    os.makedirs(os.path.join(outdir, "tree_" + name), exist_ok=True)
    save_file(ref, os.path.join(outdir, "tree_" + name, "ref.safetensors"))
    print(f"tree_{name}: loss {loss.item():.6f}, {int((targets >= 0).sum())} counted tokens")


def check_c(d):
    """Loads a falcon.c checkpoint directory with transformers and compares logits with falcon.c's."""
    model = FalconForCausalLM.from_pretrained(d, torch_dtype=torch.float32)
    model.config._attn_implementation = attention_implementation({"alibi": model.config.alibi})
    t = load_file(os.path.join(d, "logits.safetensors"))
    with torch.no_grad():
        logits = model(input_ids=t["input_ids"].long()).logits
    diff = (logits - t["logits"]).abs().max().item()
    scale = t["logits"].abs().max().item()
    print(f"{d}: max |logits(HF) - logits(falcon.c)| = {diff:.3e} (logit scale {scale:.3e})")
    return diff <= 1e-4 * max(1.0, scale)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--check-c":
        sys.exit(0 if all(check_c(d) for d in sys.argv[2:]) else 1)
    torch.set_num_threads(1)
    outdir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref")
    for name in sys.argv[1:] or [*LAYOUTS, "trees"]:
        if name == "trees":
            for layout in ("mqa", "gqa"):  # the C test loads these models from tests/ref/<layout>
                tree_reference(layout, outdir)
        else:
            reference(name, LAYOUTS[name], outdir)
