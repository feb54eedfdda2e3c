"""Parameter audit: what peft itself builds, counted per module type, beside the textbook formula 2·r·d·layers·modules.

The exact count comes from wrapping the architecture on the meta device (shapes only, no weights, no
download) with peft's own `get_peft_model` and reading the adapter tensors it created, so it holds for
every architecture and targeting rule peft supports: `all-linear`, regexes, GPT-2's Conv1D, DoRA's
magnitude vectors and `modules_to_save` (rows of their own). The card's formula 2·r·d·layers·modules
assumes every adapted projection is d × d; GQA's k/v and the MLP are not, and the table shows the gap.

    python -m bench.studies.params                                  # the default model and LoRA settings
    python -m bench.studies.params model=qwen3-0.6b peft.r=32       # offline: architecture on the meta device
    python -m bench.studies.params model.name_or_path=DIR           # the architecture in DIR/config.json
"""

from __future__ import annotations

import sys

from bench import BenchError
from bench.config.audit import audit_config
from bench.config.compose import compose


def main(argv: list[str] | None = None) -> int:

    try:
        cfg = compose(sys.argv[1:] if argv is None else argv)
        result = audit_config(cfg)
    except BenchError as err:
        print(f"bench.studies.params: {err}", file=sys.stderr)
        return 2
    print(f"model: {cfg.model.name}; architecture from {result.source} (meta device, no weights)")
    print(result.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
