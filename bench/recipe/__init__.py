"""The training recipe, the same for every method: load the model, build the data, train, evaluate."""
