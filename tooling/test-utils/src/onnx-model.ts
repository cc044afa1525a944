/**
 * Writes tiny ONNX models for tests, so feature-extractor and CLIP tests run on networks the tests
 * make instead of downloaded ones. Only the protobuf fields of onnx.proto that such graphs need
 * (ModelProto → GraphProto → NodeProto / TensorProto / ValueInfoProto) are encoded.
 */

/** ONNX element types used here (TensorProto.DataType). */
export const ONNX_FLOAT = 1;
export const ONNX_INT64 = 7;

export interface OnnxInitializer {
  name: string;
  dims: number[];
  /** float32 values, or int64 values as numbers. */
  data: Float32Array | number[];
  type?: typeof ONNX_FLOAT | typeof ONNX_INT64;
}

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  /** Attributes: numbers become INT (integers) or FLOAT, number[] INTS, strings STRING. */
  attributes?: Record<string, number | number[] | string | { float: number }>;
}

export interface OnnxValue {
  name: string;
  type: typeof ONNX_FLOAT | typeof ONNX_INT64;
  /** A number is a fixed size, a string a symbolic one (e.g. the batch). */
  shape: Array<number | string>;
}

export interface OnnxGraph {
  inputs: OnnxValue[];
  outputs: OnnxValue[];
  nodes: OnnxNode[];
  initializers?: OnnxInitializer[];
  opset?: number;
}

class ProtoWriter {
  // Whole byte arrays (tensor data, nested messages) are kept as chunks, not copied byte by byte,
  // so a model with tens of millions of weights (bench's full-size Inception) writes in a second.
  private readonly chunks: Uint8Array[] = [];
  private pending: number[] = [];

  varint(field: number, value: number | bigint): this {
    this.key(field, 0);
    this.rawVarint(BigInt.asUintN(64, BigInt(value)));
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.key(field, 2);
    this.rawVarint(BigInt(data.length));
    this.flush();
    this.chunks.push(data);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, inner: ProtoWriter): this {
    return this.bytes(field, inner.finish());
  }

  float(field: number, value: number): this {
    this.key(field, 5);
    const b = new Uint8Array(new Float32Array([value]).buffer);
    for (const x of b) this.pending.push(x);
    return this;
  }

  finish(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }

  private flush(): void {
    if (this.pending.length) this.chunks.push(Uint8Array.from(this.pending));
    this.pending = [];
  }

  private key(field: number, wire: number): void {
    this.rawVarint(BigInt((field << 3) | wire));
  }

  private rawVarint(v: bigint): void {
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) byte |= 0x80;
      this.pending.push(byte);
    } while (v !== 0n);
  }
}

function tensorProto(t: OnnxInitializer): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.varint(1, d);
  const type = t.type ?? ONNX_FLOAT;
  w.varint(2, type);
  w.string(8, t.name);
  const raw =
    type === ONNX_FLOAT
      ? new Uint8Array(Float32Array.from(t.data as ArrayLike<number>).buffer)
      : new Uint8Array(BigInt64Array.from(Array.from(t.data as ArrayLike<number>, (x) => BigInt(x))).buffer);
  return w.bytes(9, raw);
}

function attributeProto(name: string, value: NonNullable<OnnxNode['attributes']>[string]): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  if (typeof value === 'string') return w.bytes(4, new TextEncoder().encode(value)).varint(20, 3);
  if (Array.isArray(value)) {
    for (const v of value) w.varint(8, v);
    return w.varint(20, 7);
  }
  if (typeof value === 'object') return w.float(2, value.float).varint(20, 1);
  if (Number.isInteger(value)) return w.varint(3, value).varint(20, 2);
  return w.float(2, value).varint(20, 1);
}

function valueInfo(v: OnnxValue): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape)
    shape.message(1, typeof d === 'number' ? new ProtoWriter().varint(1, d) : new ProtoWriter().string(2, d));
  const tensorType = new ProtoWriter().varint(1, v.type).message(2, shape);
  return new ProtoWriter().string(1, v.name).message(2, new ProtoWriter().message(1, tensorType));
}

/** Serialises a graph as an ONNX model file (IR version 8). */
export function onnxModel(graph: OnnxGraph): Uint8Array {
  const g = new ProtoWriter();
  graph.nodes.forEach((n, i) => {
    const node = new ProtoWriter();
    for (const x of n.inputs) node.string(1, x);
    for (const x of n.outputs) node.string(2, x);
    node.string(3, `${n.op.toLowerCase()}_${i}`).string(4, n.op);
    for (const [k, v] of Object.entries(n.attributes ?? {})) node.message(5, attributeProto(k, v));
    g.message(1, node);
  });
  g.string(2, 'test-graph');
  for (const t of graph.initializers ?? []) g.message(5, tensorProto(t));
  for (const v of graph.inputs) g.message(11, valueInfo(v));
  for (const v of graph.outputs) g.message(12, valueInfo(v));
  return new ProtoWriter()
    .varint(1, 8)
    .string(2, 'matryoshka-ts tests')
    .message(7, g)
    .message(8, new ProtoWriter().string(1, '').varint(2, graph.opset ?? 17))
    .finish();
}
