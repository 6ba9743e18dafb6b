// js-drop-bots' logic in Node: node --test plugins/js-drop-bots/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { run, testSpan } from '../../guest-sdk/js/testing.js';
import plugin from './plugin.js';

const agent = (ua, path) => testSpan('GET', { 'url.path': path, 'user_agent.original': ua });

test('drops bots by the default and extra patterns, case-insensitively', () => {
  plugin.init({ extra_patterns: ['curl/'] });
  const out = run(plugin, [
    agent('Mozilla/5.0 (compatible; GoogleBot/2.1)', '/a'),
    agent('Mozilla/5.0 (X11) Firefox/128.0', '/b'),
    agent('curl/8.5.0', '/c'),
    testSpan('GET', { 'url.path': '/d' }),
  ]);
  assert.deepEqual(out.map((s) => s.attributes['url.path']), ['/b', '/d']);
});

test('bad settings are refused with the reason', () => {
  assert.throws(() => plugin.init({ paterns: ['x'] }), /unknown setting "paterns"/);
  assert.throws(() => plugin.init({ patterns: [''] }), /non-empty strings/);
});
