"""Tables, statistics and plots from finished run folders: `python -m bench.report DIR [DIR ...]`."""
