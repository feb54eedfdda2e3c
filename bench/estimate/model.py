"""A method's peak memory, part by part, from the model's shapes and the run's settings.

What each trainer holds at once follows from the method's data and its TRL config, not from a constant
fitted per method:

| method data | rows in a step | tokens a row | positions scored | generation |
|---|---|---|---|---|
| prompts (GRPO, RLOO) | per_device_train_batch_size | prompt + completion | completion | the generation batch: per_device × steps_per_generation rows |
| prompts (online DPO) | 2 × batch (two completions a prompt) | prompt + completion | completion | 2 × batch rows |
| preference (DPO, ORPO, CPO, SimPO) | 2 × batch (chosen and rejected) | prompt + completion | every position | none while training |
| unpaired (KTO, BCO) | batch | prompt + completion | every position | none |
| gold (SFT) | batch | prompt + completion | every position | none |
| prompt_ids (PPO) | batch, and the value model on the same rows | prompt + response | response | batch rows |

Weights: every frozen parameter in the run's dtype (4-bit NF4: half a byte a linear weight plus its
block scales; 8-bit: a byte plus a scale a row); trained ones in fp32, with an fp32 gradient and AdamW's
two fp32 moments each. Extra models: a reference copy where the method has one and no adapter can stand
in for it (full fine-tuning), PPO's value model (a second base with its own adapter and score head) and
its reward model (method.reward=model: a merged copy). Saved for backward: the model's own forward
traced on the meta device at the step's shapes (bench.estimate.trace), and the loss head's
vocabulary-wide tensors: the logits of the scored positions and their log-softmax. Where the installed
TRL's trainer computes log-probabilities through its chunked LM head (the trainers that patch in
`add_fused_lm_head`: SFT, DPO, KTO, GRPO and RLOO in TRL 1.16; TRL 1.13 has no such head), nothing
vocabulary-wide is saved; its working tile (tokens × vocabulary chunk, freed as it goes) is counted
instead, in `head_tile`. KV cache: keys and values of every layer for the generation batch at
prompt + completion tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

GiB = 2**30
# A "24 GB" or "80 GB" card holds that many GiB (an H100's 80 GB is 81,559 MiB), and the table prints GiB.
BUDGETS_GB = (24, 40, 80)
# Methods whose loss needs a reference model: with an adapter, the adapter disabled is the reference.
REFERENCE = {"dpo", "kto", "bco", "online_dpo", "ppo"}  # ORPO, CPO, SimPO and SFT have none
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
# Tokens an offline completion carries beyond its sampled ones: the chat template's end of turn, which the
# data builder keeps, and the EOS that TRL's preference tokenisation appends (unpaired rows: EOS only).
CLOSING_TOKENS = {"preference": 4, "unpaired": 2}
# Adapters whose loss adds a supervised term on the chosen half (ORPO's odds ratio, CPO and SimPO): the
# chosen rows' log-softmax is saved a second time.
NLL_ON_CHOSEN = {"orpo", "cpo"}
# Adapters that save every row's logits a second time: TRL 1.12's BCOTrainer sums the chosen and rejected
# rows' logits for its metrics with autograd on (`policy_chosen_logits.nansum()`), and nansum saves its
# input, an indexed copy of the logits (the metrics' sums are never differentiated, but autograd keeps it).
LOGITS_COPIED = {"bco"}


@dataclass
class Step:
    """What one training step holds at once, and what generation holds."""

    rows: int
    tokens: int
    scored: int  # positions whose vocabulary-wide logits the loss reads
    generate_rows: int = 0
    generate_tokens: int = 0
    completion: int = 0  # a row's completion tokens (with its closing ones): the positions a loss is taken on


@dataclass
class Estimate:
    method: str
    precision: str
    parts: dict[str, int] = field(default_factory=dict)
    step: Step | None = None

    @property
    def training(self) -> int:
        """The step's peak: every model's memory, what the step saved for backward, and the chunked LM
        head's transient tile."""
        p = self.parts
        return sum(p[k] for k in ("weights", "trainable", "gradients", "optimizer", "extra_models",
                                  "activations", "checkpointed", "logits", "head_tile"))

    @property
    def generation(self) -> int:
        p = self.parts
        return sum(p[k] for k in ("weights", "trainable", "gradients", "optimizer", "extra_models", "kv_cache"))

    @property
    def peak(self) -> int:
        return max(self.training, self.generation)

    def fits(self) -> dict[int, bool]:
        return {gb: self.peak <= gb * GiB for gb in BUDGETS_GB}


def step_shape(data: str, name: str, args, prompt_tokens: int, completion_tokens: int) -> Step:
    batch = int(args.per_device_train_batch_size)
    tokens = prompt_tokens + completion_tokens
    if data == "prompts":
        rows = 2 * batch if name == "online_dpo" else batch
        per_generation = int(getattr(args, "steps_per_generation", None) or getattr(args, "gradient_accumulation_steps", 1) or 1)
        generate = rows * (per_generation if name != "online_dpo" else 1)
        return Step(rows, tokens, completion_tokens, generate, tokens, completion_tokens)
    if data in ("preference", "unpaired"):  # TRL tokenises the completion with its closing turn tokens and EOS
        closing = CLOSING_TOKENS[data]
        rows = 2 * batch if data == "preference" else batch
        return Step(rows, tokens + closing, tokens + closing, completion=completion_tokens + closing)
    if data == "prompt_ids":  # PPO scores every position (its logits are the whole sequence's)
        return Step(batch, tokens, tokens, batch, tokens, completion_tokens)
    return Step(batch, tokens, tokens, completion=completion_tokens)  # gold


def weight_bytes(model, quant: str, element: int) -> int:
    """Frozen weights as stored: quantized linear layers of the decoder, everything else in the dtype."""
    total, seen = 0, set()
    for module_name, module in model.named_modules():
        for _, p in module.named_parameters(recurse=False):
            if p.requires_grad or id(p) in seen:  # tied embeddings: one tensor, counted once
                continue
            seen.add(id(p))
            n = p.numel()
            if quant != "none" and isinstance(module, torch.nn.Linear) and "lm_head" not in module_name:
                # bitsandbytes: NF4 packs two weights a byte with an fp32 scale per 64 (double quantization
                # stores those scales in 8 bits); LLM.int8 stores a byte a weight and an fp32 scale a row.
                total += n // 2 + n // 64 if quant == "nf4" else n + 4 * p.shape[0]
            else:
                total += n * element
    # Buffers (rotary frequencies) stay as built, in fp32: a few hundred bytes, counted for exactness.
    return total + sum(b.numel() * b.element_size() for b in model.buffers())


def loss_head_bytes(step: Step, vocab: int, logits_element: int, adapter: str, loss_type) -> int:
    """The vocabulary-wide tensors the loss saves: the scored positions' log-probabilities (TRL's
    selective log-softmax saves its input once), plus the chosen half again where the loss adds a
    supervised term, plus every row's again where the trainer copies them (LOGITS_COPIED); none for a
    chunked loss (TRL's chunked_nll: each chunk is freed as it goes)."""
    if loss_type == "chunked_nll":
        return 0
    once = step.rows * step.scored * vocab * logits_element
    if adapter in NLL_ON_CHOSEN:
        return once + once // 2
    if adapter in LOGITS_COPIED:
        return once + step.rows * step.tokens * vocab * logits_element
    return once


def chunked_head(method) -> tuple[int, int] | None:
    """(tokens, vocabulary columns) of the installed TRL's chunked LM head's tile where this method's
    trainer patches the head in (`add_fused_lm_head`: per-token log-probabilities without the logits), else
    None. Asks the trainer's module itself, so a TRL that adds or drops the head is read as it is."""
    import importlib

    module = method.config_class.__module__
    if not module.endswith("_config"):
        return None
    try:
        trainer = importlib.import_module(module.removesuffix("_config") + "_trainer")
    except ImportError:
        return None
    if not hasattr(trainer, "add_fused_lm_head"):
        return None
    from trl.kernels import chunked_logprob
    from trl.trainer import utils

    return int(chunked_logprob.TOKEN_CHUNK_SIZE), int(utils._CHUNKED_LOGPROB_CHUNK_SIZE)


def head_tile_bytes(step: Step, tile: tuple[int, int], element: int, compact: bool) -> int:
    """The chunked LM head's working tile: up to its token count by its full vocabulary chunk (the buffer is
    allocated at the chunk's width whatever the vocabulary), in the compute dtype; forward and backward each
    hold one, never both. On a GPU (TRL's Triton path) only the positions a loss is taken on go through the
    head; elsewhere every position does, and the torch fallback adds several tile-sized temporaries that
    this does not count. Transient, so not among what a step saves."""
    tokens, columns = tile
    positions = step.rows * (step.completion if compact else step.tokens)
    return min(positions, tokens) * columns * element


def kv_cache_bytes(config, rows: int, tokens: int, element: int) -> int:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return 2 * text.num_hidden_layers * heads * head_dim * rows * tokens * element


def precision_of(cfg) -> str:
    """The precision estimated: the run's own, where it says one; `auto` is a GPU's bf16 unless device=cpu."""
    if str(cfg.precision) != "auto":
        return str(cfg.precision)
    return "fp32" if str(cfg.device) == "cpu" else "bf16"


def estimate(cfg, prompt_tokens: int | None = None, completion_tokens: int | None = None) -> Estimate:
    """The predicted parts of one run of `cfg` (a composed config), reading no weights."""
    from bench.config import finetuning
    from bench.config.validation import validate
    from bench.measure.params import architecture, meta_model, wrap
    from bench.measure.perf import kv_bytes
    from bench.system.runtime import resolve_runtime

    precision = precision_of(cfg)
    element = DTYPE_BYTES[precision]
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    # The TRL config's shapes (bytes use `precision`); the task's data is not read: GSM8K needs none to estimate.
    checked = validate(cfg, resolve_runtime("cpu", "fp32"), task_data=False)
    method, args, audit = checked.method, checked.trainer_config, checked.audit
    name = str(cfg.method.name)
    prompt = int(prompt_tokens if prompt_tokens is not None else cfg.train.max_prompt_length)
    completion = int(completion_tokens if completion_tokens is not None else cfg.train.max_completion_length)
    step = step_shape(method.data, name, args, prompt, completion)
    config, _ = architecture(cfg.model)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    full = finetuning.is_full(cfg.peft)

    model = meta_model(config)
    peft = finetuning.peft_config(cfg.peft)
    if peft is not None:
        model = wrap(model, peft)
    else:
        model.requires_grad_(True)
    for p in model.parameters():  # the dtype rule of every run: trained weights fp32, frozen in the run's dtype
        p.data = p.data.to(torch.float32 if p.requires_grad else dtype)
    model.train()
    if cfg.train.disable_dropout:  # as the run does (train.disable_dropout): no masks, no dropped copies
        from bench.measure.probes import disable_dropout

        disable_dropout(model)
    trainable = audit.exact
    tensors = sum(1 for p in model.parameters() if p.requires_grad)  # AdamW keeps a step counter for each
    frozen = weight_bytes(model, str(cfg.quant.name), element)

    extra = 0
    reference = name in REFERENCE or (float(getattr(args, "beta", 0) or 0) > 0 and method.data == "prompts")
    if full and reference:
        extra += audit.base_params * element  # TRL's frozen reference copy
    if method.data == "prompt_ids":  # PPO: a value model (a second base, its own adapter and score head)
        head = text.vocab_size * text.hidden_size * (0 if getattr(text, "tie_word_embeddings", False) else 1)
        backbone = audit.base_params - head
        extra += backbone * element if not full else 0
        trainable += (audit.exact if not full else backbone) + text.hidden_size
        tensors = 2 * tensors + 1  # its adapter's tensors and its score head
        if str(cfg.method.get("reward")) == "model":
            extra += backbone * element  # the trained reward model, merged

    checkpointing = getattr(args, "activation_checkpointing", None)
    if checkpointing is None:  # transformers before 5 calls it gradient_checkpointing
        checkpointing = getattr(args, "gradient_checkpointing", False)
    tile = chunked_head(method)
    seen, layers_saved = _trace(model, step, text.vocab_size, bool(checkpointing),
                                getattr(args, "gradient_checkpointing_kwargs", None), fused=tile is not None)
    copies = 2 if method.data == "prompt_ids" else 1  # PPO's value model runs the same rows
    activations = seen["activations"] * copies
    # Under gradient checkpointing the layers' own tensors are dropped after the forward and recomputed a
    # layer at a time in backward, held by the checkpoint's hooks, which the measuring hooks never see
    # (a measured run counts them in `other`): each layer's input, and one layer's internals at a time.
    checkpointed = layers_saved * copies
    logits_element = 4 if precision == "fp32" else element
    parts = {
        "weights": frozen,
        "trainable": trainable * 4,
        "gradients": trainable * 4,
        "optimizer": 2 * trainable * 4 + 4 * tensors,
        "extra_models": extra,
        "activations": activations,
        "checkpointed": checkpointed,
        "logits": 0 if tile is not None else (
            loss_head_bytes(step, text.vocab_size, logits_element, method.name, getattr(args, "loss_type", None))
            + seen["logits"]),
        # GRPO's cast_lm_head_to_fp32 runs the head in fp32; a GPU (not cpu) takes TRL's compact Triton path
        "head_tile": 0 if tile is None else head_tile_bytes(
            step, tile, 4 if getattr(args, "cast_lm_head_to_fp32", False) else element, str(cfg.device) != "cpu"),
        "kv_cache": int(kv_bytes(config, step.generate_rows, step.generate_tokens, element)) if step.generate_rows else 0,
    }
    return Estimate(name, precision, parts, step)


def _trace(model, step: Step, vocab: int, checkpointing: bool, kwargs, fused: bool = False) -> tuple[dict, int]:
    """What the measuring hooks see saved in one forward at the step's shapes, and, under gradient
    checkpointing, what the checkpoint holds out of their sight: every layer's input and one layer's
    internals (the trace without checkpointing, its layer part divided by the layers). `fused`: through
    the installed TRL's chunked LM head, patched on as its trainers patch it."""
    from bench.estimate.trace import Saved, meta_forward

    ids = torch.zeros((step.rows, step.tokens), dtype=torch.long, device="meta")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if fused:
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(base, outputs=("log_probs", "entropy"))

    def forward() -> dict:
        saved = Saved(model, vocab)
        with saved.counting(), meta_forward():
            # no padding mask: .item() on a meta mask fails; the mask itself is small
            out = model(input_ids=ids, labels=ids, fused_lm_head=True) if fused else model(input_ids=ids)
        del out
        return dict(saved.bytes)

    plain = forward()
    if not checkpointing:
        return plain, 0
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs or {"use_reentrant": False})
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    try:
        seen = forward()
    finally:
        base.gradient_checkpointing_disable()
    text = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
    layers = int(text.num_hidden_layers)
    inner = plain["activations"] - seen["activations"]  # the layers' own saved tensors, all of them
    boundary = step.rows * step.tokens * int(text.hidden_size) * next(p for p in base.parameters() if not p.requires_grad).element_size()
    return seen, layers * boundary + inner // layers
