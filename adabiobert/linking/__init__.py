"""Entity linking: vocabularies, the linking index and the linker (room for issue 23; no torch, no Ray)."""
