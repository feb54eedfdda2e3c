"""Running jobs: one run top to bottom (resume, isolation, signals, its record), and the sweep's callbacks."""
