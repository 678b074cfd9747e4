"""The network: conditioning features, the WaveNet, checkpoints, held-out losses.

Imports the foundation, wavegen.notes and wavegen.data.
"""
