"""Measuring models: the transcriber and note metrics (by mir_eval), sound metrics, evaluation reports, the
composer evaluation, the demo.

Imports every layer below it; not wavegen.train (a sibling) nor wavegen.cli.
"""
