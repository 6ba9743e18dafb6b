// Drops spans from bots and crawlers: a JavaScript span processor plugin (componentize-js).
//
// Settings (the `[settings]` table of the plugin's .toml file):
//   patterns          substrings of `user_agent.original` that mark a bot (case-insensitive);
//                     replace the defaults
//   extra_patterns    added to the defaults
import { log } from 'http-autoinstrument:plugin/host@0.2.0';

const DEFAULT_PATTERNS = ['bot', 'crawler', 'spider', 'slurp', 'bingpreview', 'facebookexternalhit', 'headlesschrome'];
const decoder = new TextDecoder();
let patterns = DEFAULT_PATTERNS;

// Rows are fixed-size little-endian (layouts in wit/plugin.wit): 80 bytes per span, its
// attributes at offset 64 (first row, count); 24 bytes per attribute, key at 0 (offset,
// length), value type at 8 (0 = string), string value at 16 (offset, length).
const SPAN_ROW = 80;
const ATTRIBUTE_ROW = 24;
const EDIT_ROW = 24;
const OP_DROP = 0;
const USER_AGENT = new TextEncoder().encode('user_agent.original');

function view(bytes) {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function keyIs(text, offset, len, key) {
  if (len !== key.length) return false;
  for (let i = 0; i < len; i++) {
    if (text[offset + i] !== key[i]) return false;
  }
  return true;
}

function userAgent(batch, spans, attributes, index) {
  const first = spans.getUint32(index * SPAN_ROW + 64, true);
  const count = spans.getUint32(index * SPAN_ROW + 68, true);
  for (let i = first; i < first + count; i++) {
    const row = i * ATTRIBUTE_ROW;
    const keyOffset = attributes.getUint32(row, true);
    const keyLen = attributes.getUint32(row + 4, true);
    if (attributes.getUint8(row + 8) === 0 && keyIs(batch.text, keyOffset, keyLen, USER_AGENT)) {
      const offset = attributes.getUint32(row + 16, true);
      const len = attributes.getUint32(row + 20, true);
      return decoder.decode(batch.text.subarray(offset, offset + len));
    }
  }
  return null;
}

export const processor = {
  init(settings) {
    let config;
    try {
      config = JSON.parse(settings);
    } catch (e) {
      throw `js-drop-bots: settings are not JSON: ${e}`;
    }
    for (const key of Object.keys(config)) {
      if (key !== 'patterns' && key !== 'extra_patterns') {
        throw `js-drop-bots: unknown setting ${JSON.stringify(key)} (expected patterns, extra_patterns)`;
      }
    }
    const list = (name) => {
      const value = config[name] ?? [];
      if (!Array.isArray(value) || value.some((p) => typeof p !== 'string' || p === '')) {
        throw `js-drop-bots: ${name} must be a list of non-empty strings`;
      }
      return value.map((p) => p.toLowerCase());
    };
    patterns = (config.patterns ? list('patterns') : DEFAULT_PATTERNS).concat(list('extra_patterns'));
    log('debug', `js-drop-bots: ${patterns.length} patterns`);
  },

  process(batch) {
    const spans = view(batch.spans);
    const attributes = view(batch.attributes);
    const n = batch.spans.byteLength / SPAN_ROW;
    const drops = [];
    for (let index = 0; index < n; index++) {
      const agent = userAgent(batch, spans, attributes, index);
      if (agent !== null) {
        const lower = agent.toLowerCase();
        if (patterns.some((p) => lower.includes(p))) {
          drops.push(index);
        }
      }
    }
    // One 24-byte edit row per drop: span index, then the operation; the rest stays zero.
    const ops = new Uint8Array(drops.length * EDIT_ROW);
    const out = view(ops);
    drops.forEach((index, i) => {
      out.setUint32(i * EDIT_ROW, index, true);
      out.setUint8(i * EDIT_ROW + 4, OP_DROP);
    });
    return { ops, text: new Uint8Array(0) };
  },
};
