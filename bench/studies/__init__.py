"""Studies: tools that run the harness as their subject rather than being part of it.

- `overhead`: the harness against a plain TRL script with identical settings (`make overhead`);
- `fallbacks`: the offline data's gold-fallback share against K and temperature (`make fallbacks`);
- `tune`: each method at its own best learning rate and knob, picked on validation (`make tune`).
"""
