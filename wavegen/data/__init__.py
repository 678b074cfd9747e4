"""Datasets: building aligned (text, audio) pairs, reading them, training crops.

Imports the foundation and wavegen.notes.
"""
