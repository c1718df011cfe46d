"""Ray, and only here: the training loop on Ray Train, the annotation pipeline on Ray Data, parallel ingest, the Word2Vec corpus."""
