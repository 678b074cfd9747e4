"""Notes and their sound: the 88-key text, MIDI, sketches, one voice per key, the SoundFont renderer,
pictures.

Imports only the foundation (wavegen.errors, files, audio, config).
"""
