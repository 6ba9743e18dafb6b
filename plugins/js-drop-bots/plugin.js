// Drops spans from bots and crawlers: a JavaScript span processor plugin (componentize-js).
//
// Settings (the `[settings]` table of the plugin's .toml file):
//   patterns          substrings of `user_agent.original` that mark a bot (case-insensitive);
//                     replace the defaults
//   extra_patterns    added to the defaults
import { log } from 'http-autoinstrument:plugin/host@0.1.0';

const DEFAULT_PATTERNS = ['bot', 'crawler', 'spider', 'slurp', 'bingpreview', 'facebookexternalhit', 'headlesschrome'];
const decoder = new TextDecoder();
let patterns = DEFAULT_PATTERNS;

function text(batch, t) {
  return decoder.decode(batch.text.subarray(t.offset, t.offset + t.len));
}

function userAgent(batch, span) {
  const { start, len } = span.attributes;
  for (let i = start; i < start + len; i++) {
    const attribute = batch.attributes[i];
    if (attribute.value.tag === 'str' && text(batch, attribute.key) === 'user_agent.original') {
      return text(batch, attribute.value.val);
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
    const edits = [];
    batch.spans.forEach((span, index) => {
      const agent = userAgent(batch, span);
      if (agent !== null) {
        const lower = agent.toLowerCase();
        if (patterns.some((p) => lower.includes(p))) {
          edits.push({ tag: 'drop', val: index });
        }
      }
    });
    return edits;
  },
};
