"""The configuration, resolved once: composed, checked in seconds (before any model or data loads), hashed,
and turned into the method's TRL config."""
