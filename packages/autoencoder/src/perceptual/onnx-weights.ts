import { existsSync, readFileSync } from 'node:fs';
import { CheckpointError } from '@matryoshka-ts/core';

/**
 * A minimal ONNX reader for one purpose: the weights of a graph and the order of its nodes. ONNX
 * files are protobuf (onnx.proto): ModelProto.graph (7) → GraphProto.node (1) and
 * .initializer (5, TensorProto). Everything else is skipped, so any opset or producer reads.
 */

/** TensorProto.DataType values this reader decodes (others are reported when asked for). */
export const ONNX_FLOAT = 1;
export const ONNX_DOUBLE = 11;

/** A TensorProto as stored; its values are decoded on request (`onnxTensorFloat32`). */
export interface OnnxTensor {
  name: string;
  dims: number[];
  dataType: number;
  /** data_location = EXTERNAL: the values live in another file. */
  external: boolean;
  /** `raw_data` (little-endian), when present. */
  raw?: Uint8Array;
  /** `float_data` (packed or not), when present. */
  floatData?: Float32Array;
  /** `double_data` (packed or not), when present. */
  doubleData?: Float64Array;
}

export interface OnnxNode {
  name: string;
  opType: string;
  inputs: string[];
  outputs: string[];
  /** Tensor-valued attributes by name (a Constant node's `value`). */
  tensors: Map<string, OnnxTensor>;
}

export interface OnnxGraph {
  /** Nodes in file order (topological for exporters such as `torch.onnx.export`). */
  nodes: OnnxNode[];
  initializers: Map<string, OnnxTensor>;
}

// ---------------------------------------------------------------- protobuf wire format

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const START_GROUP = 3;
const END_GROUP = 4;
const FIXED32 = 5;

/** Reads the fields of one protobuf message, `bytes[start, end)`. */
class ProtoReader {
  private pos: number;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly view: DataView,
    start: number,
    private readonly end: number,
    private readonly corrupt: (detail: string) => CheckpointError,
  ) {
    this.pos = start;
  }

  static of(bytes: Uint8Array, corrupt: (detail: string) => CheckpointError): ProtoReader {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return new ProtoReader(bytes, view, 0, bytes.length, corrupt);
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  /** The next field's number and wire type. */
  tag(): { field: number; wire: number } {
    const key = this.varint();
    const field = Math.floor(key / 8);
    if (field === 0) throw this.corrupt(`field number 0 at byte ${this.pos}`);
    return { field, wire: key % 8 };
  }

  /**
   * An unsigned varint of up to 64 bits, exact below 2^53 (sizes, dims, enums): arithmetic, not
   * 32-bit bitwise operators, so dims past 2^31 read right.
   */
  varint(): number {
    let value = 0;
    for (let i = 0, scale = 1; i < 10; i++, scale *= 128) {
      const byte = this.byte();
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (value > Number.MAX_SAFE_INTEGER) throw this.corrupt(`a value of ${value} (over 2^53) at byte ${this.pos}`);
        return value;
      }
    }
    throw this.corrupt(`a varint longer than 10 bytes at byte ${this.pos}`);
  }

  /** A length-delimited field's bytes (a view, not a copy). */
  bytesField(): Uint8Array {
    const length = this.varint();
    const start = this.pos;
    this.need(length);
    this.pos += length;
    return this.bytes.subarray(start, start + length);
  }

  /** A length-delimited field read as a nested message. */
  message(): ProtoReader {
    const length = this.varint();
    this.need(length);
    const inner = new ProtoReader(this.bytes, this.view, this.pos, this.pos + length, this.corrupt);
    this.pos += length;
    return inner;
  }

  string(): string {
    return new TextDecoder().decode(this.bytesField());
  }

  float32(): number {
    this.need(4);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  float64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** Skips a field of any wire type; a group is skipped up to its matching end. */
  skip(field: number, wire: number): void {
    if (wire === VARINT) {
      while (this.byte() >= 0x80);
    } else if (wire === FIXED64) {
      this.need(8);
      this.pos += 8;
    } else if (wire === LENGTH_DELIMITED) {
      this.bytesField();
    } else if (wire === FIXED32) {
      this.need(4);
      this.pos += 4;
    } else if (wire === START_GROUP) {
      for (;;) {
        const inner = this.tag();
        if (inner.wire === END_GROUP) {
          if (inner.field !== field) throw this.corrupt(`group ${field} closed as ${inner.field}`);
          return;
        }
        this.skip(inner.field, inner.wire);
      }
    } else {
      throw this.corrupt(`wire type ${wire} (field ${field}) at byte ${this.pos}`);
    }
  }

  private byte(): number {
    this.need(1);
    return this.bytes[this.pos++];
  }

  private need(n: number): void {
    if (this.pos + n > this.end)
      throw this.corrupt(`a field runs past the end of its message (byte ${this.pos} + ${n} > ${this.end})`);
  }
}

/** Repeated scalars, packed (one length-delimited run) or not (one key per value), in order. */
class Repeated {
  private readonly runs: ArrayLike<number>[] = [];
  private readonly single: number[] = [];

  add(r: ProtoReader, field: number, wire: number, unpacked: number, read: (r: ProtoReader) => number): void {
    if (wire === unpacked) {
      this.single.push(read(r));
    } else if (wire === LENGTH_DELIMITED) {
      this.flush();
      const run = r.message();
      const values: number[] = [];
      while (!run.done()) values.push(read(run));
      this.runs.push(values);
    } else {
      r.skip(field, wire);
    }
  }

  values(): number[] {
    this.flush();
    return this.runs.flatMap((run) => Array.from(run));
  }

  get empty(): boolean {
    return this.runs.length === 0 && this.single.length === 0;
  }

  private flush(): void {
    if (this.single.length) this.runs.push(this.single.splice(0));
  }
}

// ---------------------------------------------------------------- ONNX messages

function readTensor(r: ProtoReader): OnnxTensor {
  const tensor: OnnxTensor = { name: '', dims: [], dataType: 0, external: false };
  const dims = new Repeated();
  const floats = new Repeated();
  const doubles = new Repeated();
  while (!r.done()) {
    const { field, wire } = r.tag();
    if (field === 1) dims.add(r, field, wire, VARINT, (x) => x.varint());
    else if (field === 2 && wire === VARINT) tensor.dataType = r.varint();
    else if (field === 4) floats.add(r, field, wire, FIXED32, (x) => x.float32());
    else if (field === 8 && wire === LENGTH_DELIMITED) tensor.name = r.string();
    else if (field === 9 && wire === LENGTH_DELIMITED) tensor.raw = r.bytesField();
    else if (field === 10) doubles.add(r, field, wire, FIXED64, (x) => x.float64());
    else if (field === 13) {
      tensor.external = true;
      r.skip(field, wire);
    } else if (field === 14 && wire === VARINT) tensor.external ||= r.varint() === 1;
    else r.skip(field, wire);
  }
  tensor.dims = dims.values();
  if (!floats.empty) tensor.floatData = Float32Array.from(floats.values());
  if (!doubles.empty) tensor.doubleData = Float64Array.from(doubles.values());
  return tensor;
}

function readAttribute(r: ProtoReader): { name: string; tensor?: OnnxTensor } {
  let name = '';
  let tensor: OnnxTensor | undefined;
  while (!r.done()) {
    const { field, wire } = r.tag();
    if (field === 1 && wire === LENGTH_DELIMITED) name = r.string();
    else if (field === 5 && wire === LENGTH_DELIMITED) tensor = readTensor(r.message());
    else r.skip(field, wire);
  }
  return { name, tensor };
}

function readNode(r: ProtoReader): OnnxNode {
  const node: OnnxNode = { name: '', opType: '', inputs: [], outputs: [], tensors: new Map() };
  while (!r.done()) {
    const { field, wire } = r.tag();
    if (wire !== LENGTH_DELIMITED) r.skip(field, wire);
    else if (field === 1) node.inputs.push(r.string());
    else if (field === 2) node.outputs.push(r.string());
    else if (field === 3) node.name = r.string();
    else if (field === 4) node.opType = r.string();
    else if (field === 5) {
      const attribute = readAttribute(r.message());
      if (attribute.tensor) node.tensors.set(attribute.name, attribute.tensor);
    } else r.skip(field, wire);
  }
  return node;
}

function readGraph(r: ProtoReader): OnnxGraph {
  const graph: OnnxGraph = { nodes: [], initializers: new Map() };
  while (!r.done()) {
    const { field, wire } = r.tag();
    if (field === 1 && wire === LENGTH_DELIMITED) graph.nodes.push(readNode(r.message()));
    else if (field === 5 && wire === LENGTH_DELIMITED) {
      const tensor = readTensor(r.message());
      graph.initializers.set(tensor.name, tensor);
    } else r.skip(field, wire);
  }
  return graph;
}

/** Parses an ONNX model's graph: its nodes in order and its initializers by name. */
export function parseOnnxModel(bytes: Uint8Array, source = 'the ONNX model'): OnnxGraph {
  const corrupt = (detail: string) =>
    new CheckpointError(`${source} is truncated or is not an ONNX model (${detail}); export it again`);
  const r = ProtoReader.of(bytes, corrupt);
  let graph: OnnxGraph | undefined;
  while (!r.done()) {
    const { field, wire } = r.tag();
    if (field === 7 && wire === LENGTH_DELIMITED) graph = readGraph(r.message());
    else r.skip(field, wire);
  }
  if (!graph) throw corrupt('no graph (ModelProto field 7)');
  return graph;
}

/** Reads and parses an ONNX file; a missing file is a `CHECKPOINT_MISSING` error. */
export function readOnnxModel(path: string): OnnxGraph {
  if (!existsSync(path)) throw new CheckpointError(`ONNX model not found: ${path}`, { code: 'CHECKPOINT_MISSING' });
  return parseOnnxModel(readFileSync(path), path);
}

// ---------------------------------------------------------------- values

const TYPE_NAMES: Record<number, string> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  16: 'bfloat16',
};

/** Product of the dims (1 for a scalar). */
export function elementCount(dims: number[]): number {
  return dims.reduce((n, d) => n * d, 1);
}

/**
 * A float32 or float64 tensor's values as float32 (float64 is rounded). Other element types and
 * external data are errors that say how to export instead.
 */
export function onnxTensorFloat32(tensor: OnnxTensor, source = 'the ONNX model'): Float32Array {
  const what = `${source}: tensor '${tensor.name}'`;
  if (tensor.external)
    throw new CheckpointError(
      `${what} keeps its values in an external data file, which this reader does not follow; ` +
        'export the model with the weights inside the .onnx file (a model under 2 GB, no external_data option)',
    );
  if (tensor.dataType !== ONNX_FLOAT && tensor.dataType !== ONNX_DOUBLE) {
    const type = TYPE_NAMES[tensor.dataType] ?? `data type ${tensor.dataType}`;
    throw new CheckpointError(`${what} holds ${type} values; only float32 (or float64) weights are read`);
  }
  const values = decodeValues(tensor);
  const count = elementCount(tensor.dims);
  if (values.length !== count)
    throw new CheckpointError(
      `${what} has ${values.length} values for shape [${tensor.dims.join(', ')}] (${count}); the file is corrupt`,
    );
  return values;
}

function decodeValues(tensor: OnnxTensor): Float32Array {
  const double = tensor.dataType === ONNX_DOUBLE;
  if (tensor.raw) {
    const width = double ? 8 : 4;
    if (tensor.raw.length % width !== 0) return new Float32Array(0); // reported as a count mismatch
    const view = new DataView(tensor.raw.buffer, tensor.raw.byteOffset, tensor.raw.byteLength);
    const out = new Float32Array(tensor.raw.length / width);
    // DataView: raw_data is little-endian on every host, and need not be aligned in the file.
    if (double) for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(8 * i, true);
    else for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
    return out;
  }
  const typed = double ? tensor.doubleData : tensor.floatData;
  return typed ? Float32Array.from(typed) : new Float32Array(0);
}

/**
 * Looks up the tensor a node input names: an initializer, or a Constant node's value, seen through
 * Identity nodes (which exporters insert for weights used twice). Undefined for computed values.
 */
export function onnxTensorResolver(graph: OnnxGraph): (name: string) => OnnxTensor | undefined {
  const producers = new Map<string, OnnxNode>();
  for (const node of graph.nodes) for (const output of node.outputs) producers.set(output, node);
  return (name) => {
    const seen = new Set<string>();
    let current = name;
    while (!seen.has(current)) {
      seen.add(current);
      const initializer = graph.initializers.get(current);
      if (initializer) return initializer;
      const node = producers.get(current);
      if (node?.opType === 'Constant') {
        const value = node.tensors.get('value');
        return value ? { ...value, name: value.name || current } : undefined;
      }
      if (node?.opType !== 'Identity') return undefined;
      current = node.inputs[0];
    }
    return undefined;
  };
}
