"""One dtype rule for every trainer: trained weights in fp32, frozen floating weights in the run's dtype."""

from __future__ import annotations


def settle_dtypes(model, run_dtype) -> dict[str, str]:
    """One dtype rule for every method and fine-tuning mode, whatever each TRL trainer casts on its own:
    trained weights in fp32, frozen floating weights in the run's dtype. Returns the record's
    `train/trainable_dtype` and `train/frozen_dtypes`.

    Trained weights in fp32 are master weights: peft's default for an adapter, bench.system.devices.trains_in_fp32
    for full fine-tuning, and here for the value/score head and peft's `modules_to_save`. Without the
    rule TRL's trainers disagree: they cast a QLoRA adapter to bf16 (a LoRA adapter stays fp32), and PPO
    and ORPO cast a 4-bit model's norms to fp32, which crashed PPO's rollouts at bf16 (they run outside
    autocast). With it, LoRA and QLoRA differ in the base's quantization alone.

    A trained module outside peft's adapter layers (a value head among bf16 frozen layers) then computes
    in fp32 and hands on the run's dtype, as autocast would: TRL's rollouts and PPO's scoring run it
    outside autocast. peft's adapter layers cast their own inputs. Hand-written: no library sets one
    rule across trainers.
    """
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer

    low = run_dtype in (torch.bfloat16, torch.float16)
    frozen, trained = set[str](), set[str]()
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32 and param.dtype.is_floating_point:
            param.data = param.data.float()
        elif not param.requires_grad and param.dtype.is_floating_point and param.dtype != run_dtype:
            param.data = param.data.to(run_dtype)
        (trained if param.requires_grad else frozen).add(str(param.dtype).removeprefix("torch."))
    if low and frozen:  # a mixed model: fp32 modules among low-precision ones
        tuners = [layer for layer in model.modules() if isinstance(layer, BaseTunerLayer)]
        inside_adapters = {id(m) for layer in tuners for m in layer.modules()}  # type: ignore[attr-defined]  # nn.Modules
        for module in model.modules():
            own = list(module.parameters(recurse=False))
            if id(module) not in inside_adapters and any(p.requires_grad for p in own):
                _compute_in_fp32(module, run_dtype)
    return {
        "train/trainable_dtype": "+".join(sorted(trained)) or "none",
        "train/frozen_dtypes": "+".join(sorted(frozen)) or "none",
    }


def settle_reference(model, run_dtype, synced: bool = False) -> str:
    """A reference model (DPO's, KTO's, PPO's under full fine-tuning) in the run's dtype; returns the
    record's `train/reference_dtypes`.

    TRL loads a full fine-tune's reference with `requires_grad=True` and only ever runs it under no_grad,
    so settle_dtypes alone would take it for trained weights and keep it fp32: 4 bytes a parameter where a
    frozen copy needs 2 at bf16. It is frozen here first; fp32 master weights are for weights an optimizer
    updates. A reference that the trainer mixes the policy into (`sync_ref_model`, TR-DPO) is updated and
    keeps fp32, as those updates would round away in bf16."""
    if not synced:
        model.requires_grad_(False)
    settle_dtypes(model, run_dtype)
    return "+".join(sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()})) or "none"


def _compute_in_fp32(module, run_dtype) -> None:
    """Inputs (positional and keyword, nested too) cast to the module's fp32 weights, its outputs (a tensor,
    a tuple, a ModelOutput) to the run's dtype; once per module."""
    import torch
    from torch.utils._pytree import tree_map

    if getattr(module, "_bench_fp32", False):
        return
    module._bench_fp32 = True

    def to(dtype):
        return lambda v: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v

    def inputs(m, args, kwargs):
        return tree_map(to(torch.float32), args), tree_map(to(torch.float32), kwargs)

    def outputs(m, args, out):
        if hasattr(out, "keys") and hasattr(out, "__setitem__"):  # a ModelOutput: cast its fields in place
            for key in list(out.keys()):
                out[key] = tree_map(to(run_dtype), out[key])
            return out
        return tree_map(to(run_dtype), out)

    module.register_forward_pre_hook(inputs, with_kwargs=True)
    module.register_forward_hook(outputs)
