"""Fieldbus drivers behind one interface (see base.py)."""
