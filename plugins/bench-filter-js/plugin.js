// plugins/filter (Rust) in JavaScript with the JavaScript SDK, for the benchmark's per-span cost
// of the same filter in each SDK (bench/benches/plugins.rs, `sdk-filter-*`). Same settings and
// verdicts.
import { StatusCode } from '../../guest-sdk/js/index.js';

const DEFAULT_PATHS = ['/health', '/healthz', '/ready', '/readyz', '/live', '/livez', '/ping'];
const SETTINGS = ['paths', 'prefixes', 'use_default_paths', 'keep_errors'];

export default {
  paths: new Set(DEFAULT_PATHS),
  prefixes: [],
  keepErrors: true,

  init(settings) {
    for (const key of Object.keys(settings)) {
      if (!SETTINGS.includes(key)) throw new Error(`filter: unknown setting ${JSON.stringify(key)}`);
    }
    const paths = [...(settings.paths ?? [])];
    if (settings.use_default_paths ?? true) paths.push(...DEFAULT_PATHS);
    const prefixes = [...(settings.prefixes ?? [])];
    for (const p of paths.concat(prefixes)) {
      if (!p.startsWith('/')) throw new Error(`filter: path ${JSON.stringify(p)} must start with '/'`);
    }
    this.paths = new Set(paths);
    this.prefixes = prefixes;
    this.keepErrors = settings.keep_errors ?? true;
  },

  // A query string or a trailing slash is ignored: /healthz/ and /healthz?full=1 too.
  matches(path) {
    const cut = path.search(/[?#]/);
    if (cut >= 0) path = path.slice(0, cut);
    const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
    return this.paths.has(trimmed) || this.prefixes.some((p) => path.startsWith(p));
  },

  process(batch, edits) {
    for (const span of batch) {
      const values = span.attributes.getMany('url.path', 'http.route');
      if (!values.some((v) => typeof v === 'string' && this.matches(v))) continue;
      const code = span.attributes.get('http.response.status_code');
      const failed = span.status === StatusCode.ERROR || ((typeof code === 'number' || typeof code === 'bigint') && code >= 500);
      if (this.keepErrors && failed) continue;
      edits.drop(span);
    }
  },
};
