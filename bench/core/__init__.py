"""The contracts every layer above builds on: the registry pattern behind each extension point."""
