"""Packaged registry data (YAML) read by jc_pipeline.lib.registry; a regular package so importlib.resources can find it."""
