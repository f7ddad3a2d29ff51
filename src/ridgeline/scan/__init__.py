"""Bulk scanning: walk folders and archives, hash, match, act, resume."""
