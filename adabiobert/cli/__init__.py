"""The ``adabiobert`` command and the argparse kit that the jobs share (the only place that parses flags)."""
