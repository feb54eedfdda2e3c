"""A merged adapter has no inference overhead, and separate adapters switch quickly."""

from __future__ import annotations

from pathlib import Path

from bench.studies.claims import Verdict, register
from bench.studies.claims.rules import all_of, saves
from bench.system import files

FILE = "adapter_serving/serving.json"
OVERHEAD = -0.05  # merged: at most 5% slower per token than the base ("no overhead" within noise)
QUICK = 0.5  # a switch between loaded adapters: under half of one generated token's latency


@register(
    "adapter_serving",
    text="A merged adapter has no inference overhead, and adapters on one loaded base switch quickly",
    source="LoRA (Hu et al., arXiv:2106.09685, section 4); peft's docs on load_adapter/set_adapter",
    rule=(
        f"From `python -m bench.studies.serving` (batch 1, one sample per round and path, interleaved): supported if "
        f"the merged model's decode step is at most {-OVERHEAD:.0%} slower than the base's and switching "
        f"between two loaded adapters (set_adapter) costs under {QUICK:.0%} of one unmerged decode step, each by "
        "the 95% interval over rounds; refuted if either interval lies wholly on the wrong side; inconclusive "
        "otherwise. The unmerged adapter's own overhead, a load from disk and a merged server's re-merge are "
        "reported beside them."
    ),
    sweeps=(),
    measures={FILE: "python -m bench.studies.serving --out {root}/" + FILE},
)
def judge(runs, root: Path) -> Verdict:
    data = files.read_json(Path(root) / FILE, "Rerun `python -m bench.studies.serving --out` to rewrite it.")
    decode, switch = data["decode_ms"], data["switch_ms"]
    parts = [
        saves(decode["merged"], decode["base"], "merged vs base, decode step", OVERHEAD, unit="rounds"),
        saves(
            switch["set_adapter"], decode["adapter"], "set_adapter vs one unmerged decode step", QUICK, unit="rounds"
        ),
    ]
    verdict = all_of(parts)
    mean = {k: sum(v) / len(v) for k, v in {**decode, **switch}.items()}
    verdict.evidence += (
        f"; beside them: the unmerged adapter's step {mean['adapter']:.1f} ms against the base's {mean['base']:.1f} ms "
        f"({mean['adapter'] / mean['base'] - 1:+.0%}), a load from disk {mean['load_adapter']:.0f} ms, a merged "
        f"server's unmerge-set-merge {mean['remerge']:.0f} ms"
    )
    verdict.figures.update({f"mean_{k}_ms": v for k, v in mean.items()})
    return verdict
