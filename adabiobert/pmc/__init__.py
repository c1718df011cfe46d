"""PubMed Central: JATS articles, file lists, the shard format, versions, ingest, the lexicon and the Word2Vec build."""
