"""Annotated corpora and their formats (IOB today), read into sentences and documents."""
