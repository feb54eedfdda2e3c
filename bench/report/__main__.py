"""`python -m bench.report DIR [DIR ...] [--out OUT] [--wandb]`."""

from bench.report.summary import main

if __name__ == "__main__":
    raise SystemExit(main())
