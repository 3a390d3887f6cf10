"""Model, loss and audio front end."""

from chordexp.model.chord_model import ChordRecognitionModel, count_parameters
from chordexp.model.frontend import LogFrequencySpectrogram
from chordexp.model.loss import ChordRecognitionLoss

__all__ = ["ChordRecognitionModel", "ChordRecognitionLoss", "LogFrequencySpectrogram", "count_parameters"]
