"""Packaged registry data (YAML) read by jc_pipeline.lib.registry; a regular package, so that importlib.resources
finds it."""
