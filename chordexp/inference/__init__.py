"""Using a trained model: load it, transcribe audio files into ``.lab`` files, score
song transcriptions during training, and export portable graphs."""
