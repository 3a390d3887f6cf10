"""The independent evaluation set: MIDI songs with exact chord labels, rendered by FluidSynth
(``python -m chordexp.evalset``): the clean songs, the band songs, what they share, and
the rendering."""
