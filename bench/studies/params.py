"""`make params`: the LoRA parameter audit (bench.measure.params) of a composed config, as a table.

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
