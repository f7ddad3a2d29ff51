"""Ridgeline: find, verify, report and track known CSAM by its fingerprints.

The package is a library first; the `ridgeline` CLI and the HTTP service are thin
layers over it. Data flows one way:
content -> signals -> index -> matches -> actions and reports -> cases -> victims.
"""

__version__ = "0.1.0"
