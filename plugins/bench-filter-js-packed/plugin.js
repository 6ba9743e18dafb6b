// plugins/filter (Rust) in JavaScript reading and packing the rows by hand with DataView, as
// JavaScript plugins were written before the SDK (offsets from wit/plugin.wit), for the
// benchmark's comparison with the SDK version (plugins/bench-filter-js). Same settings and
// verdicts. A component module of its own: built with `guest-sdk/js/build.mjs --raw`.
const DEFAULT_PATHS = ['/health', '/healthz', '/ready', '/readyz', '/live', '/livez', '/ping'];
const SPAN_ROW = 80;
const ATTRIBUTE_ROW = 24;
const EDIT_ROW = 24;
const TYPE_STR = 0;
const TYPE_INT = 1;
const STATUS_ERROR = 2;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const URL_PATH = encoder.encode('url.path');
const HTTP_ROUTE = encoder.encode('http.route');
const STATUS_CODE = encoder.encode('http.response.status_code');

let paths = new Set(DEFAULT_PATHS);
let prefixes = [];
let keepErrors = true;

function view(bytes) {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function keyIs(text, offset, length, key) {
  if (length !== key.length) return false;
  for (let i = 0; i < length; i++) {
    if (text[offset + i] !== key[i]) return false;
  }
  return true;
}

function matches(path) {
  const cut = path.search(/[?#]/);
  if (cut >= 0) path = path.slice(0, cut);
  const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  return paths.has(trimmed) || prefixes.some((p) => path.startsWith(p));
}

export const processor = {
  init(settings) {
    let config;
    try {
      config = JSON.parse(settings);
    } catch (e) {
      throw `filter: settings are not JSON: ${e}`;
    }
    for (const key of Object.keys(config)) {
      if (!['paths', 'prefixes', 'use_default_paths', 'keep_errors'].includes(key)) {
        throw `filter: unknown setting ${JSON.stringify(key)}`;
      }
    }
    const all = [...(config.paths ?? [])];
    if (config.use_default_paths ?? true) all.push(...DEFAULT_PATHS);
    prefixes = [...(config.prefixes ?? [])];
    for (const p of all.concat(prefixes)) {
      if (!p.startsWith('/')) throw `filter: path ${JSON.stringify(p)} must start with '/'`;
    }
    paths = new Set(all);
    keepErrors = config.keep_errors ?? true;
  },

  process(batch) {
    const text = batch.text;
    const spans = view(batch.spans);
    const attributes = view(batch.attributes);
    const n = batch.spans.byteLength / SPAN_ROW;
    const drops = [];
    for (let index = 0; index < n; index++) {
      // Span row: attributes (first row, count) at 64, status at 77.
      const first = spans.getUint32(index * SPAN_ROW + 64, true);
      const count = spans.getUint32(index * SPAN_ROW + 68, true);
      let matched = false;
      let failed = spans.getUint8(index * SPAN_ROW + 77) === STATUS_ERROR;
      for (let row = first; row < first + count; row++) {
        // Attribute row: key (offset, length) at 0, type at 8, value at 16.
        const at = row * ATTRIBUTE_ROW;
        const keyOffset = attributes.getUint32(at, true);
        const keyLength = attributes.getUint32(at + 4, true);
        const type = attributes.getUint8(at + 8);
        if (type === TYPE_STR && (keyIs(text, keyOffset, keyLength, URL_PATH) || keyIs(text, keyOffset, keyLength, HTTP_ROUTE))) {
          const offset = attributes.getUint32(at + 16, true);
          const length = attributes.getUint32(at + 20, true);
          matched = matched || matches(decoder.decode(text.subarray(offset, offset + length)));
        } else if (type === TYPE_INT && keyIs(text, keyOffset, keyLength, STATUS_CODE)) {
          failed = failed || attributes.getBigInt64(at + 16, true) >= 500n;
        }
      }
      if (matched && !(keepErrors && failed)) drops.push(index);
    }
    // One 24-byte edit row per drop: span index, then the operation (0 = drop); the rest zero.
    const ops = new Uint8Array(drops.length * EDIT_ROW);
    const out = view(ops);
    drops.forEach((index, i) => out.setUint32(i * EDIT_ROW, index, true));
    return { ops, text: new Uint8Array(0) };
  },
};
