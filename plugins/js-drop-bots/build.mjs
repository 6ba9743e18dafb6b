// Builds plugin.js into a component: node build.mjs OUTPUT.wasm
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const out = process.argv[2];
if (!out) {
  console.error('usage: node build.mjs OUTPUT.wasm');
  process.exit(2);
}
const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const { component } = await componentize({
  sourcePath: here('./plugin.js'),
  witPath: here('../../wit'),
  worldName: 'span-processor',
  // No HTTP or fetch: a plugin gets no network.
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(out, component);
console.log(`wrote ${out} (${component.length} bytes)`);
