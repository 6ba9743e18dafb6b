// Builds a JavaScript plugin into a WebAssembly component with componentize-js:
//   node build.mjs [--raw] PLUGIN.js OUTPUT.wasm [WIT_DIR]
// PLUGIN.js default-exports the plugin object ({init, process}; see index.js). This writes the
// component's entry module beside it, which wires the agent's host interface into the SDK and
// exports `processor` (so PLUGIN.js itself imports no component interface and runs in Node
// tests), then componentizes that. With --raw, PLUGIN.js is the component's module itself: it
// exports `processor` ({init(settings: string), process(batch) -> {ops, text}}) without the SDK.
import { componentize } from '@bytecodealliance/componentize-js';
import { rm, writeFile } from 'node:fs/promises';
import { basename, dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const raw = args[0] === '--raw';
const [pluginArg, outArg, witArg] = raw ? args.slice(1) : args;
if (!pluginArg || !outArg) {
  console.error('usage: node build.mjs [--raw] PLUGIN.js OUTPUT.wasm [WIT_DIR]');
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
if (!raw) await writeFile(
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
    sourcePath: relative(root, raw ? plugin : entry),
    witPath: wit,
    worldName: 'span-processor',
    // No HTTP or fetch: a plugin gets no network.
    disableFeatures: ['http', 'fetch-event'],
  });
  await writeFile(out, component);
  console.log(`wrote ${out} (${component.length} bytes)`);
} finally {
  if (!raw) await rm(entry, { force: true });
}

function commonRoot(a, b) {
  const x = a.split('/');
  const y = b.split('/');
  let i = 0;
  while (i < x.length && i < y.length && x[i] === y[i]) i++;
  return x.slice(0, i).join('/') || '/';
}
