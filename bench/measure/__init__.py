"""Measuring without adding: memory, step times, model FLOPs against the machine's peak, the LoRA
parameter audit, and probes of what actually applied in a built trainer."""
