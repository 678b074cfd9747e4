"""Training: one loop over a task (loop.py), and its tasks: the WaveNet (wavenet.py, `train_wavenet`)
and the composers (composer.py, `train_composer`: the Markov chain, or the LSTM through the loop).

Imports every layer below it; not wavegen.evaluate (a sibling) nor wavegen.cli.
"""
