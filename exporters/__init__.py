"""Prometheus/OpenMetrics export of txtop snapshots (issue 14): reads snapshots only.

What the CLI calls:

    holder = MetricsHolder(histograms="device")        # --metrics-histograms none|device|queue
    source.start(sink)                                  # and in that sink: holder.publish(snap)
    server = serve("127.0.0.1", 9466, holder)          # --serve [ADDR:]PORT (parse_listen)
    ...
    server.close()

    render_once(snapshot, "openmetrics")               # --once --format openmetrics|prometheus
    write_textfile(path, holder)                        # --textfile PATH, one write
    writer = TextfileWriter(path, holder)               # --textfile PATH: rewritten each tick
    ...  writer.notify() after each publish; writer.close()

Every start-up problem is an ``ExporterError`` whose text is one line (exit status 2).
"""

from txtop.exporters.metrics import (
    BUCKET_BOUNDS_NS,
    DEFAULT_HISTOGRAMS,
    HISTOGRAM_MODES,
    MetricsHolder,
    MetricsView,
    TxtopCollector,
)
from txtop.exporters.server import (
    DEFAULT_ADDRESS,
    DEFAULT_PORT,
    FORMATS,
    ExporterError,
    MetricsServer,
    TextfileWriter,
    check_textfile,
    parse_listen,
    render_once,
    serve,
    write_textfile,
)

__all__ = [
    "BUCKET_BOUNDS_NS",
    "DEFAULT_ADDRESS",
    "DEFAULT_HISTOGRAMS",
    "DEFAULT_PORT",
    "FORMATS",
    "HISTOGRAM_MODES",
    "ExporterError",
    "MetricsHolder",
    "MetricsServer",
    "MetricsView",
    "TextfileWriter",
    "TxtopCollector",
    "check_textfile",
    "parse_listen",
    "render_once",
    "serve",
    "write_textfile",
]
