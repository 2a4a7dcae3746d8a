"""txtop's pure core: the snapshot model, rates, latency summaries, filters and the source protocol.

Nothing in here touches the kernel, bcc or Textual; everything is testable on plain data.
"""
