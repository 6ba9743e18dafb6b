// Write http-autoinstrument span processor plugins in JavaScript (componentize-js).
//
//   import { definePlugin } from './sdk/index.js';
//
//   export const processor = definePlugin({
//     init(settings) { this.paths = new Set(settings.paths ?? ['/healthz']); },
//     process(batch, edits) {
//       for (const span of batch) {
//         if (this.paths.has(span.attributes.get('url.path'))) edits.drop(span);
//       }
//     },
//   });
//
// The batch is read where it lies (fixed-size rows and one text buffer, see layout.js): a field
// is decoded when it is asked for, an attribute lookup compares keys as bytes and decodes only
// the value found. Edits are packed as the agent reads them. testing.js runs a plugin in Node.
import * as L from './layout.js';

export const SpanKind = Object.freeze({ SERVER: L.KIND_SERVER, CLIENT: L.KIND_CLIENT });
export const StatusCode = Object.freeze({
  UNSET: L.STATUS_UNSET,
  OK: L.STATUS_OK,
  ERROR: L.STATUS_ERROR,
});

const decoder = new TextDecoder();
const encoder = new TextEncoder();
// Plugins look up a handful of keys over and over: each is encoded once.
const keyBytes = new Map();
function encodeKey(key) {
  let b = keyBytes.get(key);
  if (b === undefined) {
    if (keyBytes.size > 4096) keyBytes.clear();
    b = encoder.encode(key);
    keyBytes.set(key, b);
  }
  return b;
}

function view(bytes) {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// An i64 as a Number when it is exactly one, else a BigInt.
function intValue(big) {
  const n = Number(big);
  return Number.isSafeInteger(n) ? n : big;
}

function hex64(big) {
  return big.toString(16).padStart(16, '0');
}

/** A batch of spans as the agent sent it: iterate it for its spans; `batch.length`. */
export class Batch {
  constructor({ text, spans, attributes, resources }) {
    this.text = text;
    this.spans = view(spans);
    this.attributes = view(attributes);
    this.resources = view(resources);
    this.length = Math.floor(spans.byteLength / L.SPAN_ROW);
  }

  *[Symbol.iterator]() {
    for (let i = 0; i < this.length; i++) yield new Span(this, i);
  }

  /** The span at `index` (negative counts from the end), or undefined. */
  at(index) {
    if (index < 0) index += this.length;
    return index >= 0 && index < this.length ? new Span(this, index) : undefined;
  }

  str(offset, length) {
    return decoder.decode(this.text.subarray(offset, offset + length));
  }

  value(row) {
    const a = this.attributes;
    const at = row * L.ATTRIBUTE_ROW;
    switch (a.getUint8(at + L.ATTRIBUTE_TYPE)) {
      case L.TYPE_STR:
        return this.str(a.getUint32(at + L.ATTRIBUTE_VALUE, true), a.getUint32(at + L.ATTRIBUTE_VALUE + 4, true));
      case L.TYPE_INT:
        return intValue(a.getBigInt64(at + L.ATTRIBUTE_VALUE, true));
      case L.TYPE_FLOAT:
        return a.getFloat64(at + L.ATTRIBUTE_VALUE, true);
      case L.TYPE_BOOL:
        return a.getBigUint64(at + L.ATTRIBUTE_VALUE, true) !== 0n;
      default:
        return ''; // a type unknown to this SDK version reads as an empty string
    }
  }

  key(row) {
    const at = row * L.ATTRIBUTE_ROW + L.ATTRIBUTE_KEY;
    return this.str(this.attributes.getUint32(at, true), this.attributes.getUint32(at + 4, true));
  }

  // The row of each of `keys` (encoded) among `count` rows from `first`, in one walk.
  find(first, count, keys) {
    const found = new Array(keys.length).fill(-1);
    let missing = keys.length;
    const a = this.attributes;
    const text = this.text;
    for (let row = first; row < first + count && missing > 0; row++) {
      const at = row * L.ATTRIBUTE_ROW + L.ATTRIBUTE_KEY;
      const length = a.getUint32(at + 4, true);
      for (let k = 0; k < keys.length; k++) {
        const key = keys[k];
        if (found[k] !== -1 || key.length !== length) continue;
        const offset = a.getUint32(at, true);
        let same = true;
        for (let i = 0; i < length; i++) {
          if (text[offset + i] !== key[i]) {
            same = false;
            break;
          }
        }
        if (same) {
          found[k] = row;
          missing--;
        }
      }
    }
    return found;
  }
}

/**
 * A span's (or resource's) attributes, read on demand, like a read-only Map from key to string,
 * number (a BigInt for an integer beyond 2^53), or boolean, in the order the agent sent them.
 */
export class Attributes {
  constructor(batch, first, count) {
    this.batch = batch;
    this.first = first;
    this.size = count;
  }

  /** The value of `key`, or undefined. */
  get(key) {
    const [row] = this.batch.find(this.first, this.size, [encodeKey(key)]);
    return row === -1 ? undefined : this.batch.value(row);
  }

  /** The values of several keys (undefined where absent), found in one walk. */
  getMany(...keys) {
    return this.batch
      .find(this.first, this.size, keys.map(encodeKey))
      .map((row) => (row === -1 ? undefined : this.batch.value(row)));
  }

  has(key) {
    return this.batch.find(this.first, this.size, [encodeKey(key)])[0] !== -1;
  }

  *keys() {
    for (let row = this.first; row < this.first + this.size; row++) yield this.batch.key(row);
  }

  *entries() {
    for (let row = this.first; row < this.first + this.size; row++) {
      yield [this.batch.key(row), this.batch.value(row)];
    }
  }

  [Symbol.iterator]() {
    return this.entries();
  }

  toObject() {
    return Object.fromEntries(this.entries());
  }
}

/** One span of a batch; fields are read from its row when asked for. */
export class Span {
  constructor(batch, index) {
    this.batch = batch;
    /** Position in the batch: what edits refer to. */
    this.index = index;
    this.at = index * L.SPAN_ROW;
  }

  u32(field) {
    return this.batch.spans.getUint32(this.at + field, true);
  }

  u64(field) {
    return this.batch.spans.getBigUint64(this.at + field, true);
  }

  u8(field) {
    return this.batch.spans.getUint8(this.at + field);
  }

  get name() {
    return this.batch.str(this.u32(L.SPAN_NAME), this.u32(L.SPAN_NAME + 4));
  }

  /** SpanKind.SERVER or SpanKind.CLIENT. */
  get kind() {
    return this.u8(L.SPAN_KIND) === L.KIND_CLIENT ? SpanKind.CLIENT : SpanKind.SERVER;
  }

  /** A StatusCode. */
  get status() {
    const s = this.u8(L.SPAN_STATUS);
    return s <= L.STATUS_ERROR ? s : StatusCode.UNSET;
  }

  get statusMessage() {
    return this.batch.str(this.u32(L.SPAN_STATUS_MESSAGE), this.u32(L.SPAN_STATUS_MESSAGE + 4));
  }

  /** Nanoseconds since the Unix epoch, a BigInt. */
  get startUnixNanos() {
    return this.u64(L.SPAN_START);
  }

  /** Nanoseconds since the Unix epoch, a BigInt. */
  get endUnixNanos() {
    return this.u64(L.SPAN_END);
  }

  /** Nanoseconds, a Number (exact up to 104 days). */
  get durationNanos() {
    const start = this.u64(L.SPAN_START);
    const end = this.u64(L.SPAN_END);
    return end > start ? Number(end - start) : 0;
  }

  /** 32 lowercase hex digits. */
  get traceId() {
    return hex64(this.u64(L.SPAN_TRACE_ID_HIGH)) + hex64(this.u64(L.SPAN_TRACE_ID_LOW));
  }

  /** 16 lowercase hex digits. */
  get spanId() {
    return hex64(this.u64(L.SPAN_SPAN_ID));
  }

  /** 16 lowercase hex digits, or null for a root span. */
  get parentSpanId() {
    return this.u8(L.SPAN_HAS_PARENT) === 0 ? null : hex64(this.u64(L.SPAN_PARENT_SPAN_ID));
  }

  get attributes() {
    return new Attributes(this.batch, this.u32(L.SPAN_ATTRIBUTES), this.u32(L.SPAN_ATTRIBUTES + 4));
  }

  /** The attributes of the process that produced the span (`service.name`, ...). */
  get resource() {
    const r = this.batch.resources;
    const at = this.u32(L.SPAN_RESOURCE) * L.RESOURCE_ROW + L.RESOURCE_ATTRIBUTES;
    if (at + 8 > r.byteLength) return new Attributes(this.batch, 0, 0);
    return new Attributes(this.batch, r.getUint32(at, true), r.getUint32(at + 4, true));
  }
}

/** Marks a number to be sent as a float even when it is integral: `setAttribute(s, k, asFloat(2))`. */
export function asFloat(value) {
  return { float: Number(value) };
}

const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

function indexOf(span) {
  return typeof span === 'number' ? span : span.index;
}

/** Changes to a batch, applied by the agent in order after `process` returns. */
export class Edits {
  constructor() {
    this.ops = new Uint8Array(64 * L.EDIT_ROW);
    this.opsView = view(this.ops);
    this.opsLength = 0;
    this.textBytes = new Uint8Array(1024);
    this.textLength = 0;
    // The last setAttribute key and its range: a key set on every span is written once.
    this.lastKey = '';
    this.lastRange = [0, 0];
  }

  get length() {
    return this.opsLength / L.EDIT_ROW;
  }

  push(s) {
    const bytes = encoder.encode(s);
    const offset = this.textLength;
    if (offset + bytes.length > this.textBytes.length) {
      const grown = new Uint8Array(Math.max(2 * this.textBytes.length, offset + bytes.length));
      grown.set(this.textBytes.subarray(0, offset));
      this.textBytes = grown;
    }
    this.textBytes.set(bytes, offset);
    this.textLength += bytes.length;
    return [offset, bytes.length];
  }

  row(span, op, arg, [offset, length]) {
    if (this.opsLength + L.EDIT_ROW > this.ops.length) {
      const grown = new Uint8Array(2 * this.ops.length);
      grown.set(this.ops);
      this.ops = grown;
      this.opsView = view(grown);
    }
    const at = this.opsLength;
    const v = this.opsView;
    this.ops.fill(0, at, at + L.EDIT_ROW);
    v.setUint32(at + L.EDIT_SPAN, indexOf(span), true);
    v.setUint8(at + L.EDIT_OP, op);
    v.setUint8(at + L.EDIT_ARG, arg);
    v.setUint32(at + L.EDIT_TEXT, offset, true);
    v.setUint32(at + L.EDIT_TEXT + 4, length, true);
    this.opsLength += L.EDIT_ROW;
    return at + L.EDIT_VALUE;
  }

  drop(span) {
    this.row(span, L.OP_DROP, 0, [0, 0]);
  }

  rename(span, name) {
    this.row(span, L.OP_RENAME, 0, this.push(name));
  }

  /**
   * Sets `key` to a string, boolean, integer (a Number that is an integer, or a BigInt), float
   * (any other Number, or `asFloat(x)`), replacing an existing value.
   */
  setAttribute(span, key, value) {
    let range = this.lastRange;
    if (key !== this.lastKey) {
      range = this.lastRange = this.push(key);
      this.lastKey = key;
    }
    const type = typeof value;
    if (type === 'string') {
      const [offset, length] = this.push(value);
      const at = this.row(span, L.OP_SET_ATTRIBUTE, L.TYPE_STR, range);
      this.opsView.setUint32(at, offset, true);
      this.opsView.setUint32(at + 4, length, true);
    } else if (type === 'boolean') {
      const at = this.row(span, L.OP_SET_ATTRIBUTE, L.TYPE_BOOL, range);
      this.opsView.setBigUint64(at, value ? 1n : 0n, true);
    } else if (type === 'bigint' || (type === 'number' && Number.isInteger(value))) {
      const big = BigInt(value);
      if (big < I64_MIN || big > I64_MAX) {
        throw new RangeError(`attribute ${JSON.stringify(key)}: ${value} does not fit in 64 bits`);
      }
      const at = this.row(span, L.OP_SET_ATTRIBUTE, L.TYPE_INT, range);
      this.opsView.setBigInt64(at, big, true);
    } else if (type === 'number' || (value !== null && type === 'object' && typeof value.float === 'number')) {
      const at = this.row(span, L.OP_SET_ATTRIBUTE, L.TYPE_FLOAT, range);
      this.opsView.setFloat64(at, type === 'number' ? value : value.float, true);
    } else {
      throw new TypeError(
        `attribute ${JSON.stringify(key)}: a value is a string, number, bigint or boolean, not ${value === null ? 'null' : type}`,
      );
    }
  }

  removeAttribute(span, key) {
    this.row(span, L.OP_REMOVE_ATTRIBUTE, 0, this.push(key));
  }

  /** `code` is a StatusCode; the message is kept for ERROR. */
  setStatus(span, code, message = '') {
    if (![L.STATUS_UNSET, L.STATUS_OK, L.STATUS_ERROR].includes(code)) {
      throw new RangeError(`status ${code} is not a StatusCode`);
    }
    this.row(span, L.OP_SET_STATUS, code, this.push(message));
  }

  /** The packed form the agent receives. */
  toRaw() {
    return {
      ops: this.ops.subarray(0, this.opsLength),
      text: this.textBytes.subarray(0, this.textLength),
    };
  }

  /** The edits recorded so far, decoded (for tests): `{op, span, ...}` objects. */
  toList() {
    const v = this.opsView;
    const text = (at) => decoder.decode(this.textBytes.subarray(v.getUint32(at, true), v.getUint32(at, true) + v.getUint32(at + 4, true)));
    const out = [];
    for (let at = 0; at < this.opsLength; at += L.EDIT_ROW) {
      const span = v.getUint32(at + L.EDIT_SPAN, true);
      const arg = v.getUint8(at + L.EDIT_ARG);
      switch (v.getUint8(at + L.EDIT_OP)) {
        case L.OP_DROP:
          out.push({ op: 'drop', span });
          break;
        case L.OP_RENAME:
          out.push({ op: 'rename', span, name: text(at + L.EDIT_TEXT) });
          break;
        case L.OP_REMOVE_ATTRIBUTE:
          out.push({ op: 'removeAttribute', span, key: text(at + L.EDIT_TEXT) });
          break;
        case L.OP_SET_STATUS:
          out.push({ op: 'setStatus', span, code: arg, message: text(at + L.EDIT_TEXT) });
          break;
        default: {
          const value = {
            [L.TYPE_STR]: () => text(at + L.EDIT_VALUE),
            [L.TYPE_INT]: () => intValue(v.getBigInt64(at + L.EDIT_VALUE, true)),
            [L.TYPE_FLOAT]: () => v.getFloat64(at + L.EDIT_VALUE, true),
          }[arg] ?? (() => v.getBigUint64(at + L.EDIT_VALUE, true) !== 0n);
          out.push({ op: 'setAttribute', span, key: text(at + L.EDIT_TEXT), value: value() });
        }
      }
    }
    return out;
  }
}

function message(e) {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The `processor` export for componentize-js: `export const processor = definePlugin({init,
 * process})`. `init(settings)` gets the `[settings]` table of the plugin's settings file as an
 * object and throws to refuse the load; `process(batch, edits)` throws to give the batch the
 * plugin's on-error policy. Both are called with the plugin object as `this`.
 */
export function definePlugin(plugin) {
  if (typeof plugin.process !== 'function') {
    throw new TypeError('definePlugin: the plugin has no process(batch, edits) method');
  }
  let ready = false;
  return {
    init(settings) {
      let parsed;
      try {
        parsed = JSON.parse(settings);
      } catch (e) {
        throw `settings are not JSON: ${message(e)}`;
      }
      try {
        plugin.init?.(parsed);
      } catch (e) {
        throw message(e);
      }
      ready = true;
    },
    process(raw) {
      if (!ready) throw 'process called before init';
      const edits = new Edits();
      try {
        plugin.process(new Batch(raw), edits);
      } catch (e) {
        throw message(e);
      }
      return edits.toRaw();
    },
  };
}

// The agent's host interface when running as a component; console (Node tests) otherwise.
let host = null;
export function useHost(imports) {
  host = imports;
}

function logAt(level, text) {
  if (host) host.log(level, text);
  else console.error(`[${level}] ${text}`);
}

export const log = Object.freeze({
  debug: (text) => logAt('debug', text),
  info: (text) => logAt('info', text),
  warn: (text) => logAt('warn', text),
  error: (text) => logAt('error', text),
});

/** Wall-clock time, nanoseconds since the Unix epoch (a BigInt). */
export function nowUnixNanos() {
  return host ? host.nowUnixNanos() : BigInt(Date.now()) * 1_000_000n;
}

/** A random u64 (a BigInt), for sampling. */
export function randomU64() {
  return host ? host.randomU64() : BigInt(Math.floor(Math.random() * 2 ** 32)) << 32n | BigInt(Math.floor(Math.random() * 2 ** 32));
}
