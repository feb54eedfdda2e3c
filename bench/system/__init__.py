"""The foundation: the registry pattern behind every extension point (methods, tasks, claims, report
sections), and the machine and the file system: atomic caches, file reading, credentials, signals,
processes, devices.

Nothing here knows what a run is; every layer above uses these."""
