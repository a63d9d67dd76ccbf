"""pytest plugin (filled in with the service harness)."""
