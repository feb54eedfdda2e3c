"""The machine and the file system: atomic caches, file reading, credentials, signals, processes, devices.

Nothing here knows what a run is; every layer above uses these."""
