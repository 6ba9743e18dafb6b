// Builds a JavaScript plugin into a WebAssembly component with componentize-js:
//   node build.mjs PLUGIN.js OUTPUT.wasm [WIT_DIR]
// PLUGIN.js default-exports the plugin object ({init, process}; see index.js). This writes the
// component's entry module beside it, which wires the agent's host interface into the SDK and
// exports `processor` (so PLUGIN.js itself imports no component interface and runs in Node
// tests), then componentizes that.
import { componentize } from '@bytecodealliance/componentize-js';
import { rm, writeFile } from 'node:fs/promises';
import { basename, dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const [pluginArg, outArg, witArg] = process.argv.slice(2);
if (!pluginArg || !outArg) {
  console.error('usage: node build.mjs PLUGIN.js OUTPUT.wasm [WIT_DIR]');
  process.exit(2);
}
const sdk = dirname(fileURLToPath(import.meta.url));
const plugin = resolve(pluginArg);
const out = resolve(outArg);
const wit = resolve(witArg ?? resolve(sdk, '../../wit'));
const entry = resolve(dirname(plugin), `.${basename(plugin, '.js')}.component.js`);
const rel = (p) => {
  const r = relative(dirname(entry), p);
  return r.startsWith('.') ? r : `./${r}`;
};
await writeFile(
  entry,
  `import * as host from 'http-autoinstrument:plugin/host@0.2.0';
import { definePlugin, useHost } from '${rel(resolve(sdk, 'index.js'))}';
import plugin from '${rel(plugin)}';
useHost(host);
export const processor = definePlugin(plugin);
`,
);
// componentize-js maps the working directory into the engine while it pre-initialises the
// module: the plugin and the SDK must both lie under it.
const root = commonRoot(plugin, sdk);
process.chdir(root);
try {
  const { component } = await componentize({
    sourcePath: relative(root, entry),
    witPath: wit,
    worldName: 'span-processor',
    // No HTTP or fetch: a plugin gets no network.
    disableFeatures: ['http', 'fetch-event'],
  });
  await writeFile(out, component);
  console.log(`wrote ${out} (${component.length} bytes)`);
} finally {
  await rm(entry, { force: true });
}

function commonRoot(a, b) {
  const x = a.split('/');
  const y = b.split('/');
  let i = 0;
  while (i < x.length && i < y.length && x[i] === y[i]) i++;
  return x.slice(0, i).join('/') || '/';
}
