"""Composers of new sketches: the Markov chain (markov), the character LSTM (lstm), finding one by name
(load), composing a sketch (piece), large-scale form (form), the copy check (copycheck), statistics (stats).

Imports the layers below it: foundation, notes, data, nn, synth.
"""
