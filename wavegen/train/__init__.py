"""Training: one loop on accelerate over a task (the WaveNet, the composer's LSTM).

Imports every layer below it; not wavegen.evaluate (a sibling) nor wavegen.cli.
"""
