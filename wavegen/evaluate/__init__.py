"""Measuring models: the transcriber, note and sound metrics, evaluation reports, the demo.

Imports every layer below it; not wavegen.train (a sibling) nor wavegen.cli.
"""
