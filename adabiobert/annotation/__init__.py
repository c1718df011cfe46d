"""The annotation job without Ray: per-article stages, the planner, the commit protocol, tables, counts, exports."""
