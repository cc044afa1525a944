/**
 * Test-only: writes ONNX (protobuf) files, so the reader and LPIPS are tested on graphs the tests
 * make. Covers the encodings a reader must accept: raw_data, packed and unpacked float_data,
 * float64 values, int64 tensors, Constant and Identity nodes, and unknown fields of every wire type.
 */

/** Protobuf message under construction; big payloads are kept by reference until `finish`. */
export class ProtoWriter {
  private readonly parts: Uint8Array[] = [];
  private size = 0;

  get length(): number {
    return this.size;
  }

  varint(field: number, value: number | bigint): this {
    return this.key(field, 0).push(varintBytes(BigInt.asUintN(64, BigInt(value))));
  }

  fixed64(field: number, value: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, value, true);
    return this.key(field, 1).push(b);
  }

  bytes(field: number, data: Uint8Array): this {
    return this.key(field, 2)
      .push(varintBytes(BigInt(data.length)))
      .push(data);
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, inner: ProtoWriter): this {
    this.key(field, 2).push(varintBytes(BigInt(inner.size)));
    for (const p of inner.parts) this.push(p);
    return this;
  }

  /** A deprecated group (wire types 3 … 4), which readers must still skip. */
  group(field: number, inner: ProtoWriter): this {
    this.key(field, 3);
    for (const p of inner.parts) this.push(p);
    return this.key(field, 4);
  }

  fixed32Float(field: number, value: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    return this.key(field, 5).push(b);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  private key(field: number, wire: number): this {
    return this.push(varintBytes(BigInt(field) * 8n + BigInt(wire)));
  }

  private push(bytes: Uint8Array): this {
    this.parts.push(bytes);
    this.size += bytes.length;
    return this;
  }
}

function varintBytes(v: bigint): Uint8Array {
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return Uint8Array.from(out);
}

/** Little-endian bytes of float32 or float64 values. */
export function littleEndian(values: ArrayLike<number>, width: 4 | 8): Uint8Array {
  const b = new Uint8Array(values.length * width);
  const view = new DataView(b.buffer);
  for (let i = 0; i < values.length; i++)
    if (width === 4) view.setFloat32(4 * i, values[i], true);
    else view.setFloat64(8 * i, values[i], true);
  return b;
}

export interface TestTensor {
  name: string;
  dims: number[];
  values: ArrayLike<number>;
  /** float32 (default), float64 or int64. */
  type?: 'float' | 'double' | 'int64';
  /** raw_data (default), packed float_data/double_data, or one key per value. */
  encoding?: 'raw' | 'packed' | 'unpacked';
  /** Marks the tensor as stored in an external file (data_location = EXTERNAL). */
  external?: boolean;
}

const TYPE_CODES = { float: 1, double: 11, int64: 7 } as const;

export function tensorProto(t: TestTensor): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.varint(1, d);
  const type = t.type ?? 'float';
  w.varint(2, TYPE_CODES[type]).string(8, t.name);
  if (t.external) {
    const entry = new ProtoWriter().string(1, 'location').string(2, `${t.name}.bin`);
    return w.message(13, entry).varint(14, 1);
  }
  const encoding = t.encoding ?? 'raw';
  if (type === 'int64') {
    const raw = new Uint8Array(BigInt64Array.from(Array.from(t.values, (v) => BigInt(v))).buffer);
    return w.bytes(9, raw);
  }
  const width = type === 'float' ? 4 : 8;
  if (encoding === 'raw') return w.bytes(9, littleEndian(t.values, width));
  const field = type === 'float' ? 4 : 10;
  if (encoding === 'packed') return w.bytes(field, littleEndian(t.values, width));
  for (let i = 0; i < t.values.length; i++)
    if (width === 4) w.fixed32Float(field, t.values[i]);
    else w.fixed64(field, t.values[i]);
  return w;
}

export interface TestNode {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  /** A Constant node's `value` attribute. */
  value?: TestTensor;
}

/** Serialises nodes and initializers as an ONNX model, with unknown fields sprinkled in. */
export function onnxTestModel(nodes: TestNode[], initializers: TestTensor[]): Uint8Array {
  const graph = new ProtoWriter();
  nodes.forEach((n, i) => {
    const node = new ProtoWriter();
    for (const x of n.inputs) node.string(1, x);
    for (const x of n.outputs) node.string(2, x);
    node.string(3, n.name ?? `/${n.op}_${i}`).string(4, n.op);
    if (n.value) node.message(5, new ProtoWriter().string(1, 'value').message(5, tensorProto(n.value)).varint(20, 4));
    if (n.op === 'Conv') node.message(5, new ProtoWriter().string(1, 'pads').varint(8, 1).varint(8, 1).varint(20, 7));
    graph.message(1, node);
  });
  graph.string(2, 'main_graph');
  for (const t of initializers) graph.message(5, tensorProto(t));
  return new ProtoWriter()
    .varint(1, 8) // ir_version
    .string(2, 'pytorch')
    .fixed64(99, 1.5) // unknown fields of each wire type, which the reader must skip
    .fixed32Float(98, 2.5)
    .group(97, new ProtoWriter().varint(1, 3).string(2, 'skipped'))
    .message(7, graph)
    .message(8, new ProtoWriter().string(1, '').varint(2, 17))
    .finish();
}
