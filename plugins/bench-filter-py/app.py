"""plugins/filter (Rust) in Python with the Python SDK, for the benchmark's per-span cost of the
same filter in each SDK (bench/benches/plugins.rs, `sdk-filter-*`). Same settings and verdicts."""

from http_autoinstrument_plugin import Plugin, PluginError, StatusCode, export

DEFAULT_PATHS = ["/health", "/healthz", "/ready", "/readyz", "/live", "/livez", "/ping"]
SETTINGS = {"paths", "prefixes", "use_default_paths", "keep_errors"}


def failed_code(span):
    code = span.attributes.get("http.response.status_code")
    return type(code) is int and code >= 500


class Filter(Plugin):
    def init(self, settings):
        unknown = set(settings) - SETTINGS
        if unknown:
            raise PluginError(f"filter: unknown settings {sorted(unknown)}")
        paths = list(settings.get("paths", []))
        if settings.get("use_default_paths", True):
            paths += DEFAULT_PATHS
        prefixes = list(settings.get("prefixes", []))
        for p in paths + prefixes:
            if not p.startswith("/"):
                raise PluginError(f"filter: path {p!r} must start with '/'")
        self.paths = set(paths)
        self.prefixes = tuple(prefixes)
        self.keep_errors = settings.get("keep_errors", True)

    def matches(self, path):
        # A query string or a trailing slash is ignored: /healthz/ and /healthz?full=1 too.
        for sep in "?#":
            cut = path.find(sep)
            if cut >= 0:
                path = path[:cut]
        trimmed = path[:-1] if len(path) > 1 and path.endswith("/") else path
        return trimmed in self.paths or (bool(self.prefixes) and path.startswith(self.prefixes))

    def process(self, batch, edits):
        for span in batch:
            if not any(isinstance(v, str) and self.matches(v)
                       for v in span.attributes.get_many("url.path", "http.route")):
                continue
            if self.keep_errors and (span.status == StatusCode.ERROR or failed_code(span)):
                continue
            edits.drop(span)


Processor = export(Filter)
