"""A third-party plug-in, as a package outside the studio would ship one: an engine and the view that shows
its samples, declared under the "sequence_studio.engines" and "sequence_studio.views" entry-point groups.
tests/test_plugins.py installs it from a dist-info written at test time."""
