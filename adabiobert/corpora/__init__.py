"""Annotated corpora and their formats (IOB; PubTator documents with character offsets), read into sentences and documents."""
