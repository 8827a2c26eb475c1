"""mrsynth-train: headless training, export and evaluation of MRSynth models (imports MRSynthLib, never the reverse)."""
