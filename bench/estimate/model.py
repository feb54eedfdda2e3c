"""A method's peak memory, part by part, from the model's shapes and the run's settings.

What each trainer holds at once follows from the method's data and its TRL config, not from a constant
fitted per method:

| method data | rows in a step | tokens a row | positions scored | generation |
|---|---|---|---|---|
| prompts (GRPO, RLOO) | per_device batch | prompt + completion | completion | per_device × steps_per_generation rows |
| prompts (online DPO) | 2 × batch (two completions a prompt) | prompt + completion | completion | 2 × batch rows |
| preference (DPO, ORPO, CPO, SimPO) | 2 × batch (chosen, rejected) | prompt + completion | every position | none |
| unpaired (KTO, BCO) | batch | prompt + completion | every position | none |
| gold (SFT) | batch | prompt + completion | every position | none |
| prompt_ids (PPO) | batch, and the value model on the same rows | prompt + response | response | batch rows |

What a method holds beyond its data's shapes (a reference model, a value model, a second NLL term, copies of
its logits) is declared on its adapter (methods.MemoryFacts); a method that declares none is estimated
without any, and the estimate says so in a note.

Weights: every frozen parameter in the run's dtype (4-bit NF4: half a byte a linear weight plus its
block scales; 8-bit: a byte plus a scale a row; biases stay in the dtype); trained ones in fp32, with an
fp32 gradient and AdamW's two fp32 moments each. Extra models, each as the run loads it (built on the
meta device, as the policy is): a reference copy where the method has one and no adapter can stand in for
it (full fine-tuning: a frozen copy in the run's dtype, as bench.recipe.dtypes settles it), PPO's value
model (a second base loaded like the policy, quantized where the run is, with its own adapter and score head)
and its reward model
(method.reward=model: the same, merged, frozen). Saved for backward: the model's own forward
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
from typing import TYPE_CHECKING

import torch

from bench.estimate.precision import Tracer, autocast_copies, autocast_dtype, generation_element
from methods import MemoryFacts

if TYPE_CHECKING:
    from bench.estimate.source import ModelSource

GiB = 2**30
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
# Tokens an offline completion carries beyond its sampled ones: the chat template's end of turn, which the
# data builder keeps, and the EOS that TRL's preference tokenisation appends (unpaired rows: EOS only).
CLOSING_TOKENS = {"preference": 4, "unpaired": 2}
# What an adapter that declares nothing is estimated with, and the note that says so.
UNDECLARED = MemoryFacts()


@dataclass
class Step:
    """What one training step holds at once, and what generation holds."""

    rows: int
    tokens: int
    scored: int  # positions whose vocabulary-wide logits the loss reads
    generate_rows: int = 0
    generate_tokens: int = 0
    completion: int = 0  # a row's completion tokens (with its closing ones): the positions a loss is taken on


# The parts an estimate splits a peak into: every model's memory; what a training step holds on top (its saved
# tensors and the chunked LM head's tile); and generation's KV cache, held instead of the step's.
MODELS = ("weights", "trainable", "gradients", "optimizer", "extra_models")
STEP = ("activations", "autocast_copies", "checkpointed", "logits", "head_tile")
PARTS = (*MODELS, *STEP, "kv_cache")


@dataclass
class Estimate:
    method: str
    precision: str
    parts: dict[str, int] = field(default_factory=dict)
    step: Step | None = None
    model: ModelSource | None = None  # which model, its config, where it came from
    notes: list[str] = field(default_factory=list)  # what the estimate assumed rather than knew

    @property
    def training(self) -> int:
        """The step's peak: every model's memory, what the step saved for backward, and the chunked LM
        head's transient tile."""
        return sum(self.parts[k] for k in (*MODELS, *STEP))

    @property
    def generation(self) -> int:
        return sum(self.parts[k] for k in (*MODELS, "kv_cache"))

    @property
    def peak(self) -> int:
        return max(self.training, self.generation)


def step_shape(data: str, facts: MemoryFacts, args, prompt_tokens: int, completion_tokens: int) -> Step:
    batch = int(args.per_device_train_batch_size)
    tokens = prompt_tokens + completion_tokens
    if data == "prompts":
        rows = facts.completions_per_prompt * batch
        # A trainer that generates for several steps at once (GRPO's, RLOO's steps_per_generation, which
        # defaults to the accumulation steps) holds that generation batch; one without the field, its step's.
        per_generation = 1
        if hasattr(args, "steps_per_generation"):
            per_generation = int(args.steps_per_generation or getattr(args, "gradient_accumulation_steps", 1) or 1)
        return Step(rows, tokens, completion_tokens, rows * per_generation, tokens, completion_tokens)
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
        for param_name, p in module.named_parameters(recurse=False):
            if p.requires_grad or id(p) in seen:  # tied embeddings: one tensor, counted once
                continue
            seen.add(id(p))
            n = p.numel()
            # bitsandbytes quantizes a decoder linear's weight (never its bias, nor the output head: a causal
            # LM's lm_head, a value model's score)
            if (
                quant != "none"
                and isinstance(module, torch.nn.Linear)
                and param_name == "weight"
                and not any(head in module_name for head in ("lm_head", "score"))
            ):
                # bitsandbytes: NF4 packs two weights a byte with an fp32 scale per 64 (double quantization
                # stores those scales in 8 bits); LLM.int8 stores a byte a weight and an fp32 scale a row.
                total += n // 2 + n // 64 if quant == "nf4" else n + 4 * p.shape[0]
            else:
                total += n * element
    # Buffers (rotary frequencies) stay as built, in fp32: a few hundred bytes, counted for exactness.
    return total + sum(b.numel() * b.element_size() for b in model.buffers())


def loss_head_bytes(step: Step, vocab: int, logits_element: int, facts: MemoryFacts, loss_type) -> int:
    """The vocabulary-wide tensors the loss saves: the scored positions' log-probabilities (TRL's
    selective log-softmax saves its input once), plus the chosen half again where the loss adds a
    supervised term (facts.nll_on_chosen), plus every row's again for each copy the trainer keeps
    (facts.logits_copies); none for a chunked loss (TRL's chunked_nll: each chunk is freed as it goes)."""
    if loss_type == "chunked_nll":
        return 0
    once = step.rows * step.scored * vocab * logits_element
    nll = once // 2 if facts.nll_on_chosen else 0
    return once + nll + facts.logits_copies * step.rows * step.tokens * vocab * logits_element


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

    # Present where the trainer has add_fused_lm_head (checked above): the newer TRL (LOCK=current).
    return int(chunked_logprob.TOKEN_CHUNK_SIZE), int(utils._CHUNKED_LOGPROB_CHUNK_SIZE)  # type: ignore[attr-defined,unused-ignore]


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


def check_input(cfg, prompt_tokens: int | None, completion_tokens: int | None) -> None:
    """Refuse shapes no run can have, in one paragraph, before anything is built: a batch or a prompt
    below one (the batch from train.args, or the method's own args where they set it)."""
    from bench import BenchError

    method_args = cfg.method.get("args") or {}
    batch = method_args.get("per_device_train_batch_size", cfg.train.args.per_device_train_batch_size)
    checks = {
        "train.args.per_device_train_batch_size": batch,
        "--prompt-tokens" if prompt_tokens is not None else "train.max_prompt_length": prompt_tokens
        if prompt_tokens is not None
        else cfg.train.max_prompt_length,
    }
    if completion_tokens is not None:
        checks["completion tokens"] = completion_tokens
    for what, value in checks.items():
        if int(value) < 1:
            raise BenchError(f"{what}={value}: it must be at least 1.")


def has_reference(facts: MemoryFacts, args) -> bool:
    """Whether the trainer keeps a reference model: always, never, or while a config field is above 0."""
    if isinstance(facts.reference, str):
        return float(getattr(args, facts.reference, 0) or 0) > 0
    return bool(facts.reference)


@dataclass
class Extra:
    """Models beyond the policy, as the run loads them: their frozen bytes, their trainable parameters and
    tensors (AdamW's step counters), and what they save in a step (`copies` of the policy's trace)."""

    frozen: int = 0
    trainable: int = 0
    tensors: int = 0
    copies: int = 1


def extra_models(config, cfg, facts: MemoryFacts, args, base_params: int, dtype, element: int) -> Extra:
    """The reference, value and reward models of one run. Under full fine-tuning TRL keeps a frozen
    reference copy, which the harness puts in the run's dtype (bench.recipe.dtypes.settle_reference: TRL
    loads it in fp32, but frozen weights need no master copy), fp32 only where the trainer mixes the policy
    into it (`sync_ref_model`); with an adapter
    the base with the adapter disabled is the reference, no copy. PPO's value and reward models are loaded
    as the policy is (bench.recipe.train.load_policy_copy: the run's dtype and quantization, the shared
    fine-tuning mode) with a one-output score head; the reward model (method.reward=model) is merged and
    frozen. Each is built on the meta device and counted like the policy."""
    from bench.config import finetuning
    from bench.measure.params import meta_model, wrap

    full, quant = finetuning.is_full(cfg.peft), str(cfg.quant.name)
    extra = Extra()
    if full and has_reference(facts, args):
        extra.frozen += base_params * (4 if getattr(args, "sync_ref_model", False) else element)
    if not facts.value_model:
        return extra

    def scorer():
        model = meta_model(copy_with(config, num_labels=1), head="value")
        peft = finetuning.peft_config(cfg.peft, "SEQ_CLS")
        return model if peft is None else wrap(model, peft)

    value = _in_dtypes(scorer(), dtype, train_all=full)
    trained = [p for p in value.parameters() if p.requires_grad]
    extra.frozen += weight_bytes(value, quant, element)
    extra.trainable += sum(p.numel() for p in trained)
    extra.tensors += len(trained)
    extra.copies = 2  # the value model runs the same rows as the policy
    if str(cfg.method.get("reward")) == "model":  # trained first, then merged (the base's shapes) and frozen
        reward = meta_model(copy_with(config, num_labels=1), head="value").requires_grad_(False)
        extra.frozen += weight_bytes(_in_dtypes(reward, dtype, train_all=False), quant, 4 if full else element)
    return extra


def copy_with(config, **changes):
    import copy

    config = copy.deepcopy(config)
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def _in_dtypes(model, dtype, train_all: bool):
    """The dtype rule of every run: trained weights fp32, frozen ones in the run's dtype."""
    if train_all:
        model.requires_grad_(True)
    for p in model.parameters():
        p.data = p.data.to(torch.float32 if p.requires_grad else dtype)
    return model


def estimate(cfg, prompt_tokens: int | None = None, completion_tokens: int | None = None) -> Estimate:
    """The predicted parts of one run of `cfg` (a composed config), reading no weights. BenchError for a
    model it cannot find offline, or a shape no run can have."""
    from bench.config import finetuning
    from bench.config.validation import validate
    from bench.estimate.source import resolve
    from bench.measure.params import meta_model, wrap
    from bench.measure.perf import kv_bytes
    from bench.system.runtime import resolve_runtime

    check_input(cfg, prompt_tokens, completion_tokens)
    source = resolve(cfg.model)  # which model, said first: never another model's numbers
    precision = precision_of(cfg)
    element = DTYPE_BYTES[precision]
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    # The TRL config's shapes (bytes use `precision`); the task's data is not read: GSM8K needs none to estimate.
    checked = validate(cfg, resolve_runtime("cpu", "fp32"), task_data=False)
    method, args, audit = checked.method, checked.trainer_config, checked.audit
    name = str(cfg.method.name)
    notes = []
    facts = method.memory
    if facts is None:
        facts = UNDECLARED
        notes.append(
            f"method={name}: its adapter ({method.name}) declares no memory facts (methods.MemoryFacts: "
            "reference model, NLL on chosen, logits copies, value model), so none of them is assumed."
        )
    prompt = int(prompt_tokens if prompt_tokens is not None else cfg.train.max_prompt_length)
    completion = int(completion_tokens if completion_tokens is not None else cfg.train.max_completion_length)
    step = step_shape(method.data, facts, args, prompt, completion)
    config, text = source.config, source.text
    full = finetuning.is_full(cfg.peft)

    model = meta_model(config)
    peft = finetuning.peft_config(cfg.peft)
    if peft is not None:
        model = wrap(model, peft)
    model = _in_dtypes(model, dtype, train_all=full)
    model.train()
    if cfg.train.disable_dropout:  # as the run does (train.disable_dropout): no masks, no dropped copies
        from bench.measure.probes import disable_dropout

        disable_dropout(model)
    tensors = sum(1 for p in model.parameters() if p.requires_grad)  # AdamW keeps a step counter for each
    frozen = weight_bytes(model, str(cfg.quant.name), element)
    extra = extra_models(config, cfg, facts, args, audit.base_params, dtype, element)
    trainable = audit.exact + extra.trainable
    tensors += extra.tensors

    checkpointing = getattr(args, "activation_checkpointing", None)
    if checkpointing is None:  # transformers before 5 calls it gradient_checkpointing
        checkpointing = getattr(args, "gradient_checkpointing", False)
    tile = chunked_head(method)
    autocast = autocast_dtype(precision)  # mixed precision: the forward as autocast runs it
    seen, layers_saved = _trace(
        model,
        step,
        text.vocab_size,
        bool(checkpointing),
        getattr(args, "gradient_checkpointing_kwargs", None),
        fused=tile is not None,
        autocast=autocast,
    )
    activations = seen["activations"] * extra.copies
    # Under gradient checkpointing the layers' own tensors are dropped after the forward and recomputed a
    # layer at a time in backward, held by the checkpoint's hooks, which the measuring hooks never see
    # (a measured run counts them in `other`): each layer's input, and one layer's internals at a time.
    checkpointed = layers_saved * extra.copies
    # fp32 in every precision: mixed precision's outputs come back in fp32 (bench.estimate.precision)
    logits_element = 4
    parts = {
        "weights": frozen,
        "trainable": trainable * 4,
        "gradients": trainable * 4,
        "optimizer": 2 * trainable * 4 + 4 * tensors,
        "extra_models": extra.frozen,
        "activations": activations,
        "autocast_copies": autocast_copies(seen["autocast_copies"], model, getattr(args, "loss_type", None), autocast)
        * extra.copies,
        "checkpointed": checkpointed,
        "logits": 0
        if tile is not None
        else (
            loss_head_bytes(step, text.vocab_size, logits_element, facts, getattr(args, "loss_type", None))
            + seen["logits"]
        ),
        # GRPO's cast_lm_head_to_fp32 runs the head in fp32; a GPU (not cpu) takes TRL's compact Triton path
        "head_tile": 0
        if tile is None
        else head_tile_bytes(
            step, tile, 4 if getattr(args, "cast_lm_head_to_fp32", False) else element, str(cfg.device) != "cpu"
        ),
        "kv_cache": int(kv_bytes(config, step.generate_rows, step.generate_tokens, generation_element(precision, full)))
        if step.generate_rows
        else 0,
    }
    return Estimate(name, precision, parts, step, source, notes)


def _trace(
    model, step: Step, vocab: int, checkpointing: bool, kwargs, fused: bool = False, autocast: torch.dtype | None = None
) -> tuple[dict, int]:
    """What the measuring hooks see saved in one forward at the step's shapes, and, under gradient
    checkpointing, what the checkpoint holds out of their sight: every layer's input and one layer's
    internals (the trace without checkpointing, its layer part divided by the layers). `fused`: through
    the installed TRL's chunked LM head, patched on as its trainers patch it. `autocast`: the forward under
    autocast to that dtype (bench.estimate.precision.Tracer)."""
    from bench.estimate.trace import Saved, meta_forward

    tracer = Tracer(model, autocast)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if fused:
        from trl.trainer.utils import add_fused_lm_head  # type: ignore[attr-defined,unused-ignore]  # `fused`: a TRL that has it

        add_fused_lm_head(base, outputs=("log_probs", "entropy"))

    def forward() -> dict:
        saved = Saved(model, vocab)
        with saved.counting(), meta_forward(), tracer.context():
            ids = torch.zeros((step.rows, step.tokens), dtype=torch.long, device=tracer.device)
            # no padding mask: .item() on a meta mask fails; the mask itself is small
            out = model(input_ids=ids, labels=ids, fused_lm_head=True) if fused else model(input_ids=ids)
        del out
        return dict(saved.bytes)

    plain = forward()
    if not checkpointing:
        return plain, 0
    # transformers 5 names it activation checkpointing (the old name warns); before 5, gradient checkpointing
    enable = getattr(base, "activation_checkpointing_enable", None) or base.gradient_checkpointing_enable
    disable = getattr(base, "activation_checkpointing_disable", None) or base.gradient_checkpointing_disable
    enable(kwargs or {"use_reentrant": False})  # the kwargs: the first parameter under either name
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    try:
        seen = forward()
    finally:
        disable()
    text = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
    layers = int(text.num_hidden_layers)
    inner = plain["activations"] - seen["activations"]  # the layers' own saved tensors, all of them
    # each layer's input is the residual stream, in the embeddings' dtype (fp32 master weights under full
    # fine-tuning, the run's dtype under an adapter)
    residual = base.get_input_embeddings().weight.element_size()
    boundary = step.rows * step.tokens * int(text.hidden_size) * residual
    return seen, layers * boundary + inner // layers
