// The JavaScript SDK against the agent's golden batches and edits (guest-sdk/testdata/golden),
// and its testing helpers. Run: node --test guest-sdk/js/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { Batch, Edits, SpanKind, StatusCode, asFloat } from '../index.js';
import { run, testSpan } from '../testing.js';

const golden = fileURLToPath(new URL('../../testdata/golden/', import.meta.url));
const read = (path) => new Uint8Array(readFileSync(golden + path));

function load(name) {
  const batch = new Batch({
    text: read(`${name}/text.bin`),
    spans: read(`${name}/spans.bin`),
    attributes: read(`${name}/attributes.bin`),
    resources: read(`${name}/resources.bin`),
  });
  return [batch, JSON.parse(readFileSync(`${golden}${name}/expected.json`, 'utf8'))];
}

// Integers come as Numbers (BigInts beyond 2^53) and floats as Numbers: the expected file says
// which each is, so a value is compared in the form the file gives.
function attributesJson(attributes, expected) {
  return [...attributes].map(([key, value], i) => {
    const type = expected[i]?.[1];
    if (type === 'int') return [key, 'int', String(value)];
    if (typeof value === 'boolean') return [key, 'bool', value];
    if (typeof value === 'number') return [key, 'float', value];
    return [key, 'str', value];
  });
}

function spanJson(span, expected) {
  return {
    index: span.index,
    trace_id: span.traceId,
    span_id: span.spanId,
    parent_span_id: span.parentSpanId,
    name: span.name,
    kind: span.kind === SpanKind.CLIENT ? 'client' : 'server',
    start_unix_nanos: String(span.startUnixNanos),
    end_unix_nanos: String(span.endUnixNanos),
    status: ['unset', 'ok', 'error'][span.status],
    status_message: span.statusMessage,
    attributes: attributesJson(span.attributes, expected.attributes),
    resource: attributesJson(span.resource, expected.resource),
  };
}

test('reads the agent\'s golden batches', () => {
  for (const name of ['basic', 'patched', 'empty']) {
    const [batch, expected] = load(name);
    assert.equal(batch.length, expected.length, name);
    [...batch].forEach((span, i) => {
      assert.deepEqual(spanJson(span, expected[i]), expected[i], `${name} span ${i}`);
      // An integer type must not read as a float and the other way round.
      [...span.attributes].forEach(([, value], j) => {
        const type = expected[i].attributes[j][1];
        if (type === 'int') assert.ok(Number.isInteger(value) || typeof value === 'bigint');
        if (type === 'float') assert.equal(typeof value, 'number');
      });
    });
  }
});

test('lookups agree with the walk', () => {
  const [batch] = load('patched');
  for (const span of batch) {
    const entries = [...span.attributes];
    for (const [key, value] of entries) {
      assert.deepEqual(span.attributes.get(key), value);
      assert.ok(span.attributes.has(key));
    }
    assert.equal(span.attributes.get('no.such.key'), undefined);
    const keys = entries.slice(0, 3).map(([k]) => k).concat(['no.such.key']);
    assert.deepEqual(span.attributes.getMany(...keys), keys.map((k) => span.attributes.get(k)));
  }
  assert.equal(batch.at(0).resource.get('service.name'), 'shop');
  assert.equal(batch.at(-1).name, batch.at(batch.length - 1).name);
  assert.equal(batch.at(batch.length), undefined);
});

test('encodes the golden edits script byte for byte', () => {
  const [batch] = load('basic');
  const script = JSON.parse(readFileSync(`${golden}edits/script.json`, 'utf8'));
  const edits = new Edits();
  for (const step of script) {
    const span = batch.at(step.span);
    switch (step.op) {
      case 'drop': edits.drop(span); break;
      case 'rename': edits.rename(span, step.name); break;
      case 'remove_attribute': edits.removeAttribute(span, step.key); break;
      case 'set_status': edits.setStatus(span, StatusCode[step.code.toUpperCase()], step.message); break;
      case 'set_attribute': {
        const [[type, v]] = Object.entries(step.value);
        const value = type === 'int' ? BigInt(v) : type === 'float' ? asFloat(v) : v;
        edits.setAttribute(span, step.key, value);
        break;
      }
      default: assert.fail(`unknown op ${step.op}`);
    }
  }
  const raw = edits.toRaw();
  assert.deepEqual(raw.ops, read('edits/ops.bin'));
  assert.deepEqual(raw.text, read('edits/text.bin'));
});

test('testing.run packs every field and applies edits in order', () => {
  const plugin = {
    process(batch, edits) {
      for (const span of batch) {
        if (span.attributes.get('url.path') === '/healthz') {
          edits.drop(span);
          continue;
        }
        assert.equal(span.name, 'GET /é');
        assert.equal(span.kind, SpanKind.CLIENT);
        assert.equal(span.durationNanos, 500);
        assert.deepEqual(span.attributes.toObject(), { n: -7, f: 1.5, b: true, secret: 'x' });
        assert.equal(span.resource.get('service.name'), 'shop');
        edits.setAttribute(span, 'seen', true);
        edits.rename(span, `${span.name}!`);
        edits.removeAttribute(span, 'secret');
        edits.setStatus(span, StatusCode.ERROR, 'bad');
      }
    },
  };
  const out = run(plugin, [
    testSpan('GET', { 'url.path': '/healthz' }),
    testSpan('GET /é', { n: -7, f: 1.5, b: true, secret: 'x' }, {
      kind: SpanKind.CLIENT, startUnixNanos: 10n, endUnixNanos: 510n, resource: { 'service.name': 'shop' },
    }),
  ]);
  assert.equal(out.length, 1);
  assert.equal(out[0].name, 'GET /é!');
  assert.deepEqual(out[0].attributes, { n: -7, f: 1.5, b: true, seen: true });
  assert.equal(out[0].statusMessage, 'bad');
});

test('bad values are refused with the key', () => {
  const edits = new Edits();
  assert.throws(() => edits.setAttribute(0, 'k', [1]), /"k".*not object/);
  assert.throws(() => edits.setAttribute(0, 'k', 1n << 63n), /64 bits/);
  assert.throws(() => edits.setStatus(0, 7), /not a StatusCode/);
});
