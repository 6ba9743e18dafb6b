// Drops spans from bots and crawlers: a JavaScript span processor plugin (componentize-js + the
// JavaScript SDK in guest-sdk/js).
//
// Settings (the `[settings]` table of the plugin's .toml file):
//   patterns          substrings of `user_agent.original` that mark a bot (case-insensitive);
//                     replace the defaults
//   extra_patterns    added to the defaults
import { log } from '../../guest-sdk/js/index.js';

const DEFAULT_PATTERNS = ['bot', 'crawler', 'spider', 'slurp', 'bingpreview', 'facebookexternalhit', 'headlesschrome'];

function patternList(settings, name) {
  const value = settings[name] ?? [];
  if (!Array.isArray(value) || value.some((p) => typeof p !== 'string' || p === '')) {
    throw new Error(`js-drop-bots: ${name} must be a list of non-empty strings`);
  }
  return value.map((p) => p.toLowerCase());
}

export default {
  patterns: DEFAULT_PATTERNS,

  init(settings) {
    for (const key of Object.keys(settings)) {
      if (key !== 'patterns' && key !== 'extra_patterns') {
        throw new Error(`js-drop-bots: unknown setting ${JSON.stringify(key)} (expected patterns, extra_patterns)`);
      }
    }
    const base = settings.patterns ? patternList(settings, 'patterns') : DEFAULT_PATTERNS;
    this.patterns = base.concat(patternList(settings, 'extra_patterns'));
    log.debug(`js-drop-bots: ${this.patterns.length} patterns`);
  },

  process(batch, edits) {
    for (const span of batch) {
      const agent = span.attributes.get('user_agent.original');
      if (typeof agent !== 'string') continue;
      const lower = agent.toLowerCase();
      if (this.patterns.some((p) => lower.includes(p))) edits.drop(span);
    }
  },
};
