"""Hostile candidate programs and the helpers that check their containment (see programs.py)."""
