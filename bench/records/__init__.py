"""What a run leaves behind: its metrics.json (written atomically), the metric schema, W&B files."""
