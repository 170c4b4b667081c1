"""The package version, in a module of its own: every module that records it (the
stage keys of a run, the cached runs, ``mom --version``) imports it from here, not from
``mom/__init__.py``, which imports the stages and so sits above them."""

__version__ = "0.1.0"
