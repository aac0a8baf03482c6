"""Plumbing a student need not read: downloads, the command line, run folders, locks and signals.

The lesson files at the top of the repository import from here; nothing here imports them.
"""
