"""The tagger itself: encoder, word features, CRF, the ATS loss, training engine, bundle, precision, Tagger."""
