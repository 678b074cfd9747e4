"""Composers of new sketches: the Markov chain, the character LSTM, form, copy checks, statistics.

Imports the layers below it: foundation, notes, data, nn, synth.
"""
