"""Will it fit? Each method's peak memory predicted from the model's config.json and the run's settings,
part by part, before anything loads (`python -m bench.estimate`), checked against measured runs
(`make estimate-check`)."""
