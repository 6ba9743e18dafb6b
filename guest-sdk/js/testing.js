// Run a plugin in Node in unit tests: build spans, process them, look at what comes out.
// Mirrors what the agent does (pack the batch, call process, apply the edits):
//
//   import { run, testSpan } from '../../guest-sdk/js/testing.js';
//   plugin.init({});
//   const out = run(plugin, [testSpan('GET', { 'url.path': '/healthz' })]);
import { Batch, Edits, SpanKind, StatusCode } from './index.js';
import * as L from './layout.js';

const encoder = new TextEncoder();

/** An owned span for tests; `attributes` and `resource` are plain objects. */
export function testSpan(name, attributes = {}, options = {}) {
  return {
    name,
    attributes: { ...attributes },
    kind: SpanKind.SERVER,
    startUnixNanos: 1000n,
    endUnixNanos: 2000n,
    status: StatusCode.UNSET,
    statusMessage: '',
    resource: {},
    ...options,
  };
}

/** A Batch holding `spans` as the agent packs them (one resource per span here). */
export function pack(spans) {
  const text = [];
  let textLength = 0;
  const push = (s) => {
    const b = encoder.encode(s);
    text.push(b);
    textLength += b.length;
    return [textLength - b.length, b.length];
  };
  const attributes = [];
  const pushAttributes = (object) => {
    const first = attributes.length;
    for (const [key, value] of Object.entries(object)) {
      const row = new DataView(new ArrayBuffer(L.ATTRIBUTE_ROW));
      const [ko, kl] = push(key);
      row.setUint32(L.ATTRIBUTE_KEY, ko, true);
      row.setUint32(L.ATTRIBUTE_KEY + 4, kl, true);
      const v = L.ATTRIBUTE_VALUE;
      if (typeof value === 'string') {
        const [o, l] = push(value);
        row.setUint8(L.ATTRIBUTE_TYPE, L.TYPE_STR);
        row.setUint32(v, o, true);
        row.setUint32(v + 4, l, true);
      } else if (typeof value === 'boolean') {
        row.setUint8(L.ATTRIBUTE_TYPE, L.TYPE_BOOL);
        row.setBigUint64(v, value ? 1n : 0n, true);
      } else if (typeof value === 'bigint' || Number.isInteger(value)) {
        row.setUint8(L.ATTRIBUTE_TYPE, L.TYPE_INT);
        row.setBigInt64(v, BigInt(value), true);
      } else {
        row.setUint8(L.ATTRIBUTE_TYPE, L.TYPE_FLOAT);
        row.setFloat64(v, value, true);
      }
      attributes.push(new Uint8Array(row.buffer));
    }
    return [first, attributes.length - first];
  };
  const resources = new DataView(new ArrayBuffer(spans.length * L.RESOURCE_ROW));
  const rows = new DataView(new ArrayBuffer(spans.length * L.SPAN_ROW));
  spans.forEach((s, i) => {
    const [rf, rc] = pushAttributes(s.resource);
    resources.setUint32(i * L.RESOURCE_ROW + L.RESOURCE_ATTRIBUTES, rf, true);
    resources.setUint32(i * L.RESOURCE_ROW + L.RESOURCE_ATTRIBUTES + 4, rc, true);
    const [first, count] = pushAttributes(s.attributes);
    const at = i * L.SPAN_ROW;
    const range = (field, [o, l]) => {
      rows.setUint32(at + field, o, true);
      rows.setUint32(at + field + 4, l, true);
    };
    rows.setBigUint64(at + L.SPAN_TRACE_ID_HIGH, 1n, true);
    rows.setBigUint64(at + L.SPAN_TRACE_ID_LOW, BigInt(i), true);
    rows.setBigUint64(at + L.SPAN_SPAN_ID, BigInt(i + 1), true);
    rows.setBigUint64(at + L.SPAN_START, BigInt(s.startUnixNanos), true);
    rows.setBigUint64(at + L.SPAN_END, BigInt(s.endUnixNanos), true);
    range(L.SPAN_NAME, push(s.name));
    range(L.SPAN_STATUS_MESSAGE, push(s.statusMessage));
    range(L.SPAN_ATTRIBUTES, [first, count]);
    rows.setUint32(at + L.SPAN_RESOURCE, i, true);
    rows.setUint8(at + L.SPAN_KIND, s.kind);
    rows.setUint8(at + L.SPAN_STATUS, s.status);
  });
  const joined = new Uint8Array(textLength);
  let offset = 0;
  for (const b of text) {
    joined.set(b, offset);
    offset += b.length;
  }
  const table = new Uint8Array(attributes.length * L.ATTRIBUTE_ROW);
  attributes.forEach((row, i) => table.set(row, i * L.ATTRIBUTE_ROW));
  return new Batch({
    text: joined,
    spans: new Uint8Array(rows.buffer),
    attributes: table,
    resources: new Uint8Array(resources.buffer),
  });
}

/** The spans after `edits`, applied the way the agent applies them. */
export function apply(spans, edits) {
  const out = spans.map((s) => ({ ...s, attributes: { ...s.attributes } }));
  const list = edits.toList();
  for (const e of list) {
    if (e.span >= out.length) throw new RangeError(`edit refers to span ${e.span} of a batch of ${out.length}`);
  }
  const dropped = new Set();
  for (const e of list) {
    const s = out[e.span];
    if (e.op === 'drop') dropped.add(e.span);
    else if (e.op === 'rename') s.name = e.name;
    else if (e.op === 'setAttribute') s.attributes[e.key] = e.value;
    else if (e.op === 'removeAttribute') delete s.attributes[e.key];
    else if (e.op === 'setStatus') {
      s.status = e.code;
      s.statusMessage = e.message;
    }
  }
  return out.filter((_, i) => !dropped.has(i));
}

/** Runs `spans` through `plugin` (already initialised) and returns what comes out. */
export function run(plugin, spans) {
  const edits = new Edits();
  plugin.process(pack(spans), edits);
  return apply(spans, edits);
}
